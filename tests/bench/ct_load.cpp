// ct_load: conntrack load generator and probe for tests/bench/sync.
//
// Runs inside one lab namespace (`ip netns exec NS ct_load ...`) and talks ctnetlink directly
// through libmnl; libnetfilter_conntrack only serialises the entries it creates. Every command
// prints one JSON line on stdout; errors go to stderr with exit status 2.
//
//   gen    --k0 K --count N [--rate R] [--batch B] [--ts-out FILE] [--max-seconds S]
//          [--fifo PRIO]
//          Creates entries K .. K+N-1 (see "Entries" below) at R entries/s (0 = as fast as
//          possible), several ctnetlink messages per sendmsg() and no ACK requested (errors
//          are still reported by the kernel and counted). With --ts-out, writes one u64 per
//          entry: CLOCK_MONOTONIC ns just before the sendmsg() that created it. With --fifo,
//          runs SCHED_FIFO at PRIO: on a firewall, flows are created in softirq context, which
//          no daemon can delay; a normal-priority generator would instead be throttled by a
//          daemon running real-time (conntrackd runs SCHED_RR 99 by default). At rates of
//          --spin-above (default 20000) and more it waits by spinning, not sleeping: a woken
//          SCHED_FIFO task still waits for a CPU that same-priority SCHED_RR tasks hold.
//   listen --k0 K --count N [--out FILE] [--max-seconds S] [--fifo PRIO]
//          Subscribes to conntrack NEW events (64 MiB receive buffer, SO_RCVBUFFORCE), prints
//          {"ready":true} once subscribed, and records for each generator entry in range the
//          CLOCK_MONOTONIC ns at which its first NEW event was read: pairs of u64 (k, t) in
//          FILE. Ends when all N were seen, on SIGTERM/SIGINT, or after S seconds. --fifo as
//          for gen, so that the time an event is read is close to the time it was queued.
//   count  [--k0 K --count N]
//          Dumps the IPv4 table and counts generator entries (all, in range, in range with
//          the SRC_NAT status bit) and the table total.
//   stamps --k0 K --count N --out FILE
//          Dumps the IPv4 table and writes, for each generator entry in range that carries a
//          start timestamp (net.netfilter.nf_conntrack_timestamp = 1 in the namespace when it
//          was created), pairs of u64 (k, start): CLOCK_REALTIME ns at which the kernel
//          inserted the entry (ctnetlink sets it just before the insert, for an entry a
//          daemon writes as for one the generator creates). Prints the count counters plus
//          "stamped".
//   wait   --k0 K --count N --target T [--timeout S] [--stable S] [--poll-ms P]
//          [--pid-file FILE]
//          Polls /proc/sys/net/netfilter/nf_conntrack_count (per namespace) every P ms. When
//          it reaches T, confirms with a dump that T generator entries in range exist and
//          reports the poll time at which that was first true ("t_reach_ns"). Gives up after
//          --timeout, or when for --stable seconds (0: never) the count has not changed and
//          the processes listed in FILE (PIDs, re-read every second) have used at most 3% CPU.
//
// Entries: entry k is a forwarded client -> server flow as the lab's firewall would hold it:
//   original 192.0.2.(16 + k % 224):(1024 + (k / 224) % 64000) -> 198.51.100.10:(10000 +
//   k / 256000); TCP ESTABLISHED (ASSURED|SEEN_REPLY) unless k % 3 == 2, which is UDP
//   (ASSURED|SEEN_REPLY); every k % 4 == 0 is source-NATed to the WAN VIP 198.51.100.1 with
//   port 1024 + (k / 4) % 64000 (so reply tuples stay unique too); timeout 3600 s. Tuples are
//   unique for k < 14,336,000 and k can be recovered from the original tuple.
//   NAT is requested the way KERNEL-FACTS.md says works: reply tuple = inverted original
//   (NFCT_SOPT_SETUP_REPLY), then the SNAT attributes; the kernel computes the NAT reply.
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kMaxK = 224ull * 64000ull;
constexpr uint32_t kServer = (198u << 24) | (51u << 16) | (100u << 8) | 10u;
constexpr uint32_t kWanVip = (198u << 24) | (51u << 16) | (100u << 8) | 1u;
constexpr uint32_t kClientNet = (192u << 24) | (0u << 16) | (2u << 8);
constexpr uint32_t kTimeoutS = 3600;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "ct_load: %s\n", msg.c_str());
  std::exit(2);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void sleep_until_ns(uint64_t t) {
  timespec ts{time_t(t / 1000000000ull), long(t % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop) {
  }
}

struct Tuple {
  uint32_t src;  // host order
  uint16_t sport, dport, natport;
  uint8_t proto;
  bool nat;
};

Tuple tuple_of(uint64_t k) {
  Tuple t;
  t.src = kClientNet | uint32_t(16 + k % 224);
  t.sport = uint16_t(1024 + (k / 224) % 64000);
  t.dport = uint16_t(10000 + k / 256000);
  t.proto = (k % 3 == 2) ? IPPROTO_UDP : IPPROTO_TCP;
  t.nat = (k % 4 == 0);
  t.natport = uint16_t(1024 + (k / 4) % 64000);
  return t;
}

// Inverse of tuple_of on the original tuple; false for anything that is not a generator entry.
bool k_of(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto,
          uint64_t& k) {
  if (dst != kServer || (src & 0xffffff00u) != kClientNet) return false;
  uint32_t a = (src & 0xffu);
  if (a < 16 || a >= 16 + 224 || sport < 1024 || sport >= 1024 + 64000) return false;
  k = uint64_t(a - 16) + 224ull * uint64_t(sport - 1024);
  return dport == 10000 + k / 256000 && proto == tuple_of(k).proto;
}

// --- arguments --------------------------------------------------------------------------------

struct Args {
  std::map<std::string, std::string> kv;
  uint64_t u(const char* key, uint64_t def) const {
    auto it = kv.find(key);
    if (it == kv.end()) return def;
    char* end = nullptr;
    unsigned long long v = std::strtoull(it->second.c_str(), &end, 10);
    if (end == it->second.c_str() || *end) die(std::string("bad number for --") + key);
    return v;
  }
  double d(const char* key, double def) const {
    auto it = kv.find(key);
    if (it == kv.end()) return def;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end) die(std::string("bad number for --") + key);
    return v;
  }
  std::string s(const char* key, const std::string& def = "") const {
    auto it = kv.find(key);
    return it == kv.end() ? def : it->second;
  }
};

Args parse_args(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) die("bad argument " + key);
    a.kv[key.substr(2)] = argv[++i];
  }
  return a;
}

// --- netlink helpers ------------------------------------------------------------------------

mnl_socket* open_nl(unsigned groups, int rcvbuf) {
  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl) die(std::string("mnl_socket_open: ") + strerror(errno));
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0)
    die(std::string("mnl_socket_bind: ") + strerror(errno));
  if (rcvbuf > 0) {
    int fd = mnl_socket_get_fd(nl);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  int one = 1;
  // Errors without the echoed request: smaller, so more fit in the buffer.
  mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof one);
  return nl;
}

nlmsghdr* put_header(void* at, uint8_t msg, uint16_t flags, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(at);
  nlh->nlmsg_type = uint16_t((NFNL_SUBSYS_CTNETLINK << 8) | msg);
  nlh->nlmsg_flags = uint16_t(NLM_F_REQUEST | flags);
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

struct Parsed {
  bool ok = false;
  uint64_t k = 0;
  uint32_t status = 0;
  uint64_t start_ns = 0;  // CTA_TIMESTAMP_START; 0 without the timestamp extension
};

// libmnl's mnl_attr_for_each* macros do not compile as C++ (void* conversions): the same walk.
template <typename F>
void for_each_attr(const void* start, const void* end, F f) {
  auto* a = static_cast<const nlattr*>(start);
  const char* e = static_cast<const char*>(end);
  while (mnl_attr_ok(a, int(e - reinterpret_cast<const char*>(a)))) {
    f(a);
    a = mnl_attr_next(a);
  }
}

template <typename F>
void for_each_nested(const nlattr* nest, F f) {
  const char* p = static_cast<const char*>(mnl_attr_get_payload(nest));
  for_each_attr(p, p + mnl_attr_get_payload_len(nest), f);
}

void parse_tuple(const nlattr* tuple, uint32_t& src, uint32_t& dst, uint16_t& sport,
                 uint16_t& dport, uint8_t& proto) {
  for_each_nested(tuple, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_TUPLE_IP: {
        for_each_nested(a, [&](const nlattr* b) {
          if (mnl_attr_get_type(b) == CTA_IP_V4_SRC && mnl_attr_get_payload_len(b) >= 4)
            src = ntohl(mnl_attr_get_u32(b));
          else if (mnl_attr_get_type(b) == CTA_IP_V4_DST && mnl_attr_get_payload_len(b) >= 4)
            dst = ntohl(mnl_attr_get_u32(b));
        });
        break;
      }
      case CTA_TUPLE_PROTO: {
        for_each_nested(a, [&](const nlattr* b) {
          if (mnl_attr_get_type(b) == CTA_PROTO_NUM)
            proto = mnl_attr_get_u8(b);
          else if (mnl_attr_get_type(b) == CTA_PROTO_SRC_PORT)
            sport = ntohs(mnl_attr_get_u16(b));
          else if (mnl_attr_get_type(b) == CTA_PROTO_DST_PORT)
            dport = ntohs(mnl_attr_get_u16(b));
        });
        break;
      }
      default:
        break;
    }
  });
}

Parsed parse_ct(const nlmsghdr* nlh) {
  Parsed p;
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return p;
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t proto = 0;
  bool have_tuple = false;
  for_each_attr(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)), mnl_nlmsg_get_payload_tail(nlh),
                [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_TUPLE_ORIG:
        parse_tuple(a, src, dst, sport, dport, proto);
        have_tuple = true;
        break;
      case CTA_STATUS:
        p.status = ntohl(mnl_attr_get_u32(a));
        break;
      case CTA_TIMESTAMP:
        for_each_nested(a, [&](const nlattr* b) {
          if (mnl_attr_get_type(b) == CTA_TIMESTAMP_START && mnl_attr_get_payload_len(b) >= 8)
            p.start_ns = be64toh(mnl_attr_get_u64(b));
        });
        break;
      default:
        break;
    }
  });
  p.ok = have_tuple && k_of(src, dst, sport, dport, proto, p.k);
  return p;
}

// --- gen --------------------------------------------------------------------------------------

struct Templates {
  nf_conntrack* ct[2][2];  // [tcp?][nat?]
  Templates() {
    for (int tcp = 0; tcp < 2; ++tcp)
      for (int nat = 0; nat < 2; ++nat) {
        nf_conntrack* c = nfct_new();
        if (!c) die("nfct_new");
        nfct_set_attr_u8(c, ATTR_ORIG_L3PROTO, AF_INET);
        nfct_set_attr_u8(c, ATTR_ORIG_L4PROTO, tcp ? IPPROTO_TCP : IPPROTO_UDP);
        nfct_set_attr_u32(c, ATTR_ORIG_IPV4_DST, htonl(kServer));
        nfct_set_attr_u32(c, ATTR_TIMEOUT, kTimeoutS);
        nfct_set_attr_u32(c, ATTR_STATUS, IPS_ASSURED | IPS_SEEN_REPLY);
        if (tcp) nfct_set_attr_u8(c, ATTR_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
        if (nat) nfct_set_attr_u32(c, ATTR_SNAT_IPV4, htonl(kWanVip));
        ct[tcp][nat] = c;
      }
  }
  nf_conntrack* fill(uint64_t k) {
    Tuple t = tuple_of(k);
    nf_conntrack* c = ct[t.proto == IPPROTO_TCP][t.nat];
    nfct_set_attr_u32(c, ATTR_ORIG_IPV4_SRC, htonl(t.src));
    nfct_set_attr_u16(c, ATTR_ORIG_PORT_SRC, htons(t.sport));
    nfct_set_attr_u16(c, ATTR_ORIG_PORT_DST, htons(t.dport));
    nfct_setobjopt(c, NFCT_SOPT_SETUP_REPLY);
    if (t.nat) nfct_set_attr_u16(c, ATTR_SNAT_PORT, htons(t.natport));
    return c;
  }
};

struct ErrorCounts {
  std::map<int, uint64_t> by_errno;
  uint64_t total = 0;
  uint64_t recv_enobufs = 0;
};

void drain_errors(mnl_socket* nl, std::vector<char>& buf, ErrorCounts& ec) {
  for (;;) {
    ssize_t n = recv(mnl_socket_get_fd(nl), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        ++ec.recv_enobufs;
        continue;
      }
      return;  // EAGAIN
    }
    int len = int(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0) {
        ++ec.by_errno[-err->error];
        ++ec.total;
      }
    }
  }
}

void set_fifo(const Args& a) {
  if (const uint64_t prio = a.u("fifo", 0); prio > 0) {
    sched_param sp{};
    sp.sched_priority = int(prio);
    if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
      die(std::string("sched_setscheduler: ") + strerror(errno));
  }
}

int cmd_gen(const Args& a) {
  const uint64_t k0 = a.u("k0", 0), count = a.u("count", 0);
  const double rate = a.d("rate", 0);
  const uint64_t batch_max = std::max<uint64_t>(1, a.u("batch", 200));
  const double max_s = a.d("max-seconds", 600);
  const std::string ts_out = a.s("ts-out");
  const bool spin = rate >= a.d("spin-above", 20000);
  if (k0 + count > kMaxK) die("k range exceeds the unique-tuple space");
  set_fifo(a);

  mnl_socket* nl = open_nl(0, 8 << 20);
  Templates tpl;
  std::vector<char> sendbuf(batch_max * 512 + 8192);
  std::vector<char> rcvbuf(1 << 16);
  std::vector<uint64_t> ts;
  if (!ts_out.empty()) ts.resize(count);
  ErrorCounts ec;
  uint32_t seq = uint32_t(now_ns());
  uint64_t sends = 0;
  std::vector<uint64_t> sends_on_cpu;  // by CPU

  const uint64_t t_start = now_ns();
  const uint64_t t_deadline = t_start + uint64_t(max_s * 1e9);
  uint64_t done = 0;
  bool timed_out = false;
  while (done < count && !g_stop) {
    uint64_t n;
    uint64_t t = now_ns();
    if (t > t_deadline) {
      timed_out = true;
      break;
    }
    if (rate > 0) {
      uint64_t due = uint64_t(double(t - t_start) * rate / 1e9) + 1;
      if (due > count) due = count;
      if (due <= done) {
        if (!spin) sleep_until_ns(t_start + uint64_t(double(done) * 1e9 / rate));
        continue;
      }
      n = std::min(due - done, batch_max);
    } else {
      n = std::min(count - done, batch_max);
    }
    mnl_nlmsg_batch* b = mnl_nlmsg_batch_start(sendbuf.data(), sendbuf.size());
    for (uint64_t i = 0; i < n; ++i) {
      nlmsghdr* nlh = put_header(mnl_nlmsg_batch_current(b), IPCTNL_MSG_CT_NEW,
                                 NLM_F_CREATE | NLM_F_EXCL, ++seq);
      if (nfct_nlmsg_build(nlh, tpl.fill(k0 + done + i)) < 0) die("nfct_nlmsg_build");
      mnl_nlmsg_batch_next(b);
    }
    const uint64_t t_send = now_ns();
    ssize_t r = mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b));
    mnl_nlmsg_batch_stop(b);
    if (r < 0) die(std::string("sendto: ") + strerror(errno));
    ++sends;
    // Where the generator ran (the bench reports it per run): its CPU decides what it
    // competes with, a daemon's pinned thread or nothing.
    if (const int cpu = sched_getcpu(); cpu >= 0) {
      if (static_cast<size_t>(cpu) >= sends_on_cpu.size()) sends_on_cpu.resize(cpu + 1, 0);
      ++sends_on_cpu[static_cast<size_t>(cpu)];
    }
    if (!ts.empty())
      for (uint64_t i = 0; i < n; ++i) ts[done + i] = t_send;
    done += n;
    drain_errors(nl, rcvbuf, ec);
  }
  const uint64_t t_end = now_ns();
  drain_errors(nl, rcvbuf, ec);
  mnl_socket_close(nl);

  if (!ts_out.empty()) {
    FILE* f = std::fopen(ts_out.c_str(), "wb");
    if (!f) die("cannot write " + ts_out);
    if (done && std::fwrite(ts.data(), sizeof(uint64_t), done, f) != done) die("short write");
    std::fclose(f);
  }
  const double secs = double(t_end - t_start) / 1e9;
  std::string cpus;
  for (size_t c = 0; c < sends_on_cpu.size(); ++c) {
    if (sends_on_cpu[c] == 0) continue;
    if (!cpus.empty()) cpus += ",";
    cpus += "\"" + std::to_string(c) + "\":" + std::to_string(sends_on_cpu[c]);
  }
  std::string errs;
  for (auto& [e, c] : ec.by_errno) {
    if (!errs.empty()) errs += ",";
    errs += "\"" + std::string(strerror(e)) + "\":" + std::to_string(c);
  }
  std::printf(
      "{\"requested\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"errors\":%" PRIu64
      ",\"created\":%" PRIu64 ",\"error_kinds\":{%s},\"recv_enobufs\":%" PRIu64
      ",\"sends\":%" PRIu64 ",\"t_start_ns\":%" PRIu64 ",\"t_end_ns\":%" PRIu64
      ",\"seconds\":%.6f,\"rate\":%.1f,\"timed_out\":%s,\"interrupted\":%s"
      ",\"sends_on_cpu\":{%s}}\n",
      count, done, ec.total, done - std::min(done, ec.total), errs.c_str(), ec.recv_enobufs,
      sends, t_start, t_end, secs, secs > 0 ? double(done) / secs : 0.0,
      timed_out ? "true" : "false", g_stop ? "true" : "false", cpus.c_str());
  return 0;
}

// --- listen -----------------------------------------------------------------------------------

int cmd_listen(const Args& a) {
  const uint64_t k0 = a.u("k0", 0), count = a.u("count", 0);
  const double max_s = a.d("max-seconds", 600);
  const std::string out = a.s("out");
  set_fifo(a);

  mnl_socket* nl = open_nl(NF_NETLINK_CONNTRACK_NEW, 64 << 20);
  int fd = mnl_socket_get_fd(nl);
  int got = 0;
  socklen_t gl = sizeof got;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
  std::printf("{\"ready\":true,\"rcvbuf\":%d}\n", got);
  std::fflush(stdout);

  std::vector<uint64_t> first(count, 0);
  std::vector<uint64_t> order;  // k of first sightings, in arrival order
  order.reserve(count);
  std::vector<char> buf(1 << 16);
  uint64_t events = 0, in_range = 0, dupes = 0, others = 0, enobufs = 0;
  const uint64_t t_deadline = now_ns() + uint64_t(max_s * 1e9);
  while (!g_stop && order.size() < count && now_ns() < t_deadline) {
    pollfd p{fd, POLLIN, 0};
    int pr = poll(&p, 1, 100);
    if (pr <= 0) continue;
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    const uint64_t t = now_ns();
    if (n < 0) {
      if (errno == ENOBUFS) ++enobufs;
      continue;
    }
    int len = int(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      ++events;
      Parsed pc = parse_ct(nlh);
      if (!pc.ok || pc.k < k0 || pc.k >= k0 + count) {
        ++others;
        continue;
      }
      ++in_range;
      uint64_t& slot = first[pc.k - k0];
      if (slot) {
        ++dupes;
        continue;
      }
      slot = t;
      order.push_back(pc.k);
    }
  }
  mnl_socket_close(nl);
  if (!out.empty()) {
    FILE* f = std::fopen(out.c_str(), "wb");
    if (!f) die("cannot write " + out);
    for (uint64_t k : order) {
      uint64_t rec[2] = {k, first[k - k0]};
      std::fwrite(rec, sizeof rec, 1, f);
    }
    std::fclose(f);
  }
  std::printf("{\"events\":%" PRIu64 ",\"seen\":%zu,\"in_range_events\":%" PRIu64
              ",\"dupes\":%" PRIu64 ",\"others\":%" PRIu64 ",\"enobufs\":%" PRIu64 "}\n",
              events, order.size(), in_range, dupes, others, enobufs);
  return 0;
}

// --- count / wait -----------------------------------------------------------------------------

struct Count {
  uint64_t total = 0, gen = 0, in_range = 0, in_range_nat = 0, nat_expected = 0;
  bool interrupted = false;
};

struct Stamp {
  uint64_t k, start_ns;
};

// `stamps`, when given, collects the start timestamp of every entry in range that has one.
Count dump_count(uint64_t k0, uint64_t count, std::vector<Stamp>* stamps = nullptr) {
  Count c;
  mnl_socket* nl = open_nl(0, 4 << 20);
  std::vector<char> buf(1 << 17);
  const uint32_t seq = uint32_t(now_ns());
  nlmsghdr* nlh = put_header(buf.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) die("dump sendto");
  for (bool done = false; !done;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      die(std::string("dump recv: ") + strerror(errno));
    }
    int len = int(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (m->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (err->error) die(std::string("dump: ") + strerror(-err->error));
        done = true;
        break;
      }
      if (m->nlmsg_flags & NLM_F_DUMP_INTR) c.interrupted = true;
      ++c.total;
      Parsed p = parse_ct(m);
      if (!p.ok) continue;
      ++c.gen;
      if (p.k >= k0 && p.k < k0 + count) {
        ++c.in_range;
        if (stamps && p.start_ns) stamps->push_back({p.k, p.start_ns});
        if (tuple_of(p.k).nat) {
          ++c.nat_expected;
          if (p.status & IPS_SRC_NAT) ++c.in_range_nat;
        }
      }
    }
  }
  mnl_socket_close(nl);
  return c;
}

void print_count(const Count& c, const char* extra) {
  std::printf("{\"total\":%" PRIu64 ",\"gen\":%" PRIu64 ",\"in_range\":%" PRIu64
              ",\"nat_expected\":%" PRIu64 ",\"nat_ok\":%" PRIu64 ",\"dump_interrupted\":%s%s}\n",
              c.total, c.gen, c.in_range, c.nat_expected, c.in_range_nat,
              c.interrupted ? "true" : "false", extra);
}

int cmd_count(const Args& a) {
  print_count(dump_count(a.u("k0", 0), a.u("count", kMaxK)), "");
  return 0;
}

int cmd_stamps(const Args& a) {
  const std::string out = a.s("out");
  if (out.empty()) die("stamps: --out FILE is required");
  std::vector<Stamp> stamps;
  const Count c = dump_count(a.u("k0", 0), a.u("count", kMaxK), &stamps);
  FILE* f = std::fopen(out.c_str(), "wb");
  if (!f) die("cannot write " + out);
  for (const Stamp& s : stamps) {
    const uint64_t rec[2] = {s.k, s.start_ns};
    if (std::fwrite(rec, sizeof rec, 1, f) != 1) die("short write to " + out);
  }
  if (std::fclose(f) != 0) die("cannot write " + out);
  const std::string extra = ",\"stamped\":" + std::to_string(stamps.size());
  print_count(c, extra.c_str());
  return 0;
}

// utime+stime+cutime+cstime, in clock ticks, of the PIDs listed in `path`.
long long read_ticks(const std::string& path) {
  long long total = 0;
  if (path.empty()) return 0;
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  long pid;
  while (std::fscanf(f, "%ld", &pid) == 1) {
    char name[64];
    std::snprintf(name, sizeof name, "/proc/%ld/stat", pid);
    FILE* st = std::fopen(name, "r");
    if (!st) continue;
    char line[1024];
    size_t n = std::fread(line, 1, sizeof line - 1, st);
    std::fclose(st);
    line[n] = 0;
    const char* p = std::strrchr(line, ')');
    if (!p) continue;
    // Fields after the command name: 3 (state) ... 14 utime, 15 stime, 16 cutime, 17 cstime.
    long long v[15] = {};
    int field = 0;
    for (const char* q = p + 2; *q && field < 15; ++field) {
      char* end;
      v[field] = std::strtoll(q, &end, 10);
      if (end == q) ++end;  // the state letter
      q = end;
      while (*q == ' ') ++q;
    }
    total += v[11] + v[12] + v[13] + v[14];
  }
  std::fclose(f);
  return total;
}

long read_ct_count() {
  int fd = open("/proc/sys/net/netfilter/nf_conntrack_count", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("cannot open nf_conntrack_count");
  char b[32];
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  if (n <= 0) die("cannot read nf_conntrack_count");
  b[n] = 0;
  return std::strtol(b, nullptr, 10);
}

int cmd_wait(const Args& a) {
  const uint64_t k0 = a.u("k0", 0), count = a.u("count", 0);
  const uint64_t target = a.u("target", count);
  const double timeout = a.d("timeout", 60), stable = a.d("stable", 0);
  const uint64_t poll_ns = uint64_t(a.d("poll-ms", 5) * 1e6);
  const std::string pid_file = a.s("pid-file");
  const long long busy_ticks = std::max(1L, sysconf(_SC_CLK_TCK) * 3 / 100);
  std::printf("{\"ready\":true}\n");
  std::fflush(stdout);

  const uint64_t t0 = now_ns();
  const uint64_t deadline = t0 + uint64_t(timeout * 1e9);
  long last = -1;
  uint64_t t_last_change = t0, t_reach = 0, dumps = 0, t_next_dump = 0;
  uint64_t t_last_busy = t0, t_next_sample = t0 + 1000000000ull;
  long long ticks = read_ticks(pid_file);
  const char* why = "timeout";
  Count c;
  while (!g_stop) {
    const uint64_t t = now_ns();
    const long cur = read_ct_count();
    if (cur != last) {
      last = cur;
      t_last_change = t;
    }
    if (uint64_t(cur) >= target && t >= t_next_dump) {
      c = dump_count(k0, count);
      ++dumps;
      if (c.in_range >= target) {
        t_reach = t;
        why = "reached";
        break;
      }
      // The count includes entries that are not ours: look again once it has moved on.
      t_next_dump = now_ns() + 50000000ull;
    }
    if (t >= t_next_sample) {
      const long long now_ticks = read_ticks(pid_file);
      if (now_ticks - ticks > busy_ticks) t_last_busy = t;
      ticks = now_ticks;
      t_next_sample = t + 1000000000ull;
    }
    if (stable > 0 && t - std::max(t_last_change, t_last_busy) >= uint64_t(stable * 1e9)) {
      why = "stable";
      break;
    }
    if (t >= deadline) break;
    sleep_until_ns(t + poll_ns);
  }
  if (g_stop) why = "interrupted";
  if (!t_reach) c = dump_count(k0, count);
  char extra[256];
  std::snprintf(extra, sizeof extra,
                ",\"why\":\"%s\",\"t_reach_ns\":%" PRIu64 ",\"t_last_change_ns\":%" PRIu64
                ",\"t_end_ns\":%" PRIu64 ",\"ct_count\":%ld,\"dumps\":%" PRIu64,
                why, t_reach, t_last_change, now_ns(), last, dumps);
  print_count(c, extra);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ct_load gen|listen|count|stamps|wait [--key value ...]\n");
    return 2;
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const std::string cmd = argv[1];
  Args a = parse_args(argc, argv, 2);
  if (cmd == "gen") return cmd_gen(a);
  if (cmd == "listen") return cmd_listen(a);
  if (cmd == "count") return cmd_count(a);
  if (cmd == "stamps") return cmd_stamps(a);
  if (cmd == "wait") return cmd_wait(a);
  die("unknown command " + cmd);
}
