// The real ConntrackWriter/Reader/Events over ctnetlink, with libmnl for the sockets and
// libnetfilter_conntrack only for attribute (de)serialisation (nfct_nlmsg_build/parse): we
// keep control of sequence numbers, ACKs and buffers, which batching will need later.
//
// Choices, and why:
// - Writer: one request, one ACK. Requests are built by put_ct_request() at any position of a
//   buffer and ACKs are matched by sequence number, so a batch is "put N, send once, read N
//   ACKs" without changing either helper.
// - New tries create first (EEXIST -> update); Update tries update first (ENOENT -> create):
//   each guesses the common case. NAT only travels on create (the kernel refuses it on
//   update). Destroy of a missing entry is success.
// - Messages are walked by hand (mnl_nlmsg_ok/next) instead of mnl_cb_run: no C callback
//   stands between us and the caller's code, so a throwing visitor cannot unwind through C.
// - Reader opens a socket per dump: an abandoned dump (visitor threw) leaves nothing behind
//   that could make the next dump fail with EBUSY or read stale messages.
// - Events: NETLINK_NO_ENOBUFS is deliberately NOT set. An overrun is reported once, after
//   the events still queued have been delivered, and the caller resyncs.
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <sys/socket.h>

#include <climits>
#include <memory>
#include <vector>

#include "sync/conntrack_convert.h"
#include "sync/conntrack_port.h"

namespace fwha::sync {
namespace {

struct MnlSocketCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocketPtr = std::unique_ptr<mnl_socket, MnlSocketCloser>;

// One conntrack object is a few hundred bytes; a request buffer of 8 KiB cannot overflow
// (nfct_nlmsg_build does not check the space it writes to).
constexpr size_t kRequestBuffer = 8192;
// Large receive buffers let the kernel pack more dump messages per datagram.
constexpr size_t kReceiveBuffer = 32768;
// Bound on datagrams read per drain(), so a flood cannot starve the event loop; the fd stays
// readable and the next poll round continues.
constexpr int kMaxReadsPerDrain = 65536;

std::error_code errno_code(int e) { return {e, std::generic_category()}; }

MnlSocketPtr open_socket(int flags, unsigned groups, std::error_code& ec) {
  MnlSocketPtr s(mnl_socket_open2(NETLINK_NETFILTER, flags | SOCK_CLOEXEC));
  if (!s || mnl_socket_bind(s.get(), groups, MNL_SOCKET_AUTOPID) < 0) {
    ec = errno_code(errno);
    return nullptr;
  }
  ec.clear();
  return s;
}

// Appends one ctnetlink request at `at` (which must have kRequestBuffer bytes free).
nlmsghdr* put_ct_request(void* at, uint8_t msg, uint16_t flags, uint32_t seq, uint8_t family,
                         const nf_conntrack* ct) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(at);
  nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msg);
  nlh->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  if (ct != nullptr && nfct_nlmsg_build(nlh, ct) < 0) return nullptr;
  return nlh;
}

uint8_t family_of(const nf_conntrack* ct) { return nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO); }

bool is_ctnetlink(const nlmsghdr* nlh) { return (nlh->nlmsg_type >> 8) == NFNL_SUBSYS_CTNETLINK; }

// A ctnetlink message -> FlowEntry; false when it is not one we can carry.
bool parse_entry(const nlmsghdr* nlh, FlowEntry& out) {
  NfConntrackPtr ct(nfct_new());
  if (!ct || nfct_nlmsg_parse(nlh, ct.get()) < 0) return false;
  return from_nf_conntrack(ct.get(), out);
}

// errno of an NLMSG_ERROR message (0 for an ACK).
int nlmsg_error_of(const nlmsghdr* nlh) {
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) return EBADMSG;
  return -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
}

// Receives one datagram, retrying on EINTR. Returns bytes read or -errno.
ssize_t receive(mnl_socket* s, std::vector<char>& buf) {
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s, buf.data(), buf.size());
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

// One family throughout the tuples we send; a mixed entry (only possible from a broken peer)
// would otherwise be serialised with addresses of the wrong length. The reply tuple is only
// read for NAT on create, so a Destroy or a non-NAT entry may leave it empty.
bool addresses_consistent(const FlowChange& c) {
  const FlowEntry& e = c.entry;
  const Family f = e.original.src.family;
  if (e.original.dst.family != f) return false;
  if (c.kind == FlowChangeKind::Destroy || !(e.is_snat() || e.is_dnat())) return true;
  return e.reply.src.family == f && e.reply.dst.family == f;
}

// ---------------------------------------------------------------------------------------------

class NetlinkWriter final : public ConntrackWriter {
 public:
  explicit NetlinkWriter(MnlSocketPtr s)
      : sock_(std::move(s)), request_(kRequestBuffer), reply_(kReceiveBuffer) {}

  std::error_code apply(const FlowChange& change) override {
    if (!addresses_consistent(change)) return std::make_error_code(std::errc::invalid_argument);
    switch (change.kind) {
      case FlowChangeKind::New:
        return create_or_update(change.entry);
      case FlowChangeKind::Update:
        return update_or_create(change.entry);
      case FlowChangeKind::Destroy:
        return destroy(change.entry);
    }
    return std::make_error_code(std::errc::invalid_argument);
  }

 private:
  std::error_code create(const FlowEntry& e) {
    NfConntrackPtr ct = to_nf_conntrack_for_create(e);
    if (!ct) return std::make_error_code(std::errc::not_enough_memory);
    return request(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, ct.get());
  }

  std::error_code update(const FlowEntry& e) {
    NfConntrackPtr ct = to_nf_conntrack_for_update(e);
    if (!ct) return std::make_error_code(std::errc::not_enough_memory);
    std::error_code ec = request(IPCTNL_MSG_CT_NEW, 0, ct.get());
    // EBUSY: the local entry has ASSURED/SEEN_REPLY and ours does not (bits can only be
    // set). Keep the local bits and apply the rest.
    if (ec == std::errc::device_or_resource_busy && nfct_attr_is_set(ct.get(), ATTR_STATUS)) {
      nfct_attr_unset(ct.get(), ATTR_STATUS);
      ec = request(IPCTNL_MSG_CT_NEW, 0, ct.get());
    }
    return ec;
  }

  std::error_code create_or_update(const FlowEntry& e) {
    std::error_code ec = create(e);
    return ec == std::errc::file_exists ? update(e) : ec;
  }

  std::error_code update_or_create(const FlowEntry& e) {
    std::error_code ec = update(e);
    if (ec != std::errc::no_such_file_or_directory) return ec;
    ec = create(e);
    return ec == std::errc::file_exists ? update(e) : ec;  // lost a race with another writer
  }

  std::error_code destroy(const FlowEntry& e) {
    NfConntrackPtr ct = to_nf_conntrack_for_delete(e);
    if (!ct) return std::make_error_code(std::errc::not_enough_memory);
    std::error_code ec = request(IPCTNL_MSG_CT_DELETE, 0, ct.get());
    return ec == std::errc::no_such_file_or_directory ? std::error_code{} : ec;
  }

  std::error_code request(uint8_t msg, uint16_t flags, const nf_conntrack* ct) {
    const uint32_t seq = ++seq_;
    nlmsghdr* nlh = put_ct_request(request_.data(), msg, flags | NLM_F_ACK, seq, family_of(ct), ct);
    if (nlh == nullptr) return std::make_error_code(std::errc::invalid_argument);
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return errno_code(errno);
    return read_ack(seq);
  }

  // Waits for the ACK (or error) of `seq`; anything else (a late answer to an earlier
  // request) is skipped.
  std::error_code read_ack(uint32_t seq) {
    for (;;) {
      ssize_t n = receive(sock_.get(), reply_);
      if (n < 0) return errno_code(static_cast<int>(-n));
      int len = static_cast<int>(n);
      for (auto* nlh = reinterpret_cast<const nlmsghdr*>(reply_.data()); mnl_nlmsg_ok(nlh, len);
           nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_seq != seq || nlh->nlmsg_type != NLMSG_ERROR) continue;
        int err = nlmsg_error_of(nlh);
        return err == 0 ? std::error_code{} : errno_code(err);
      }
    }
  }

  MnlSocketPtr sock_;
  uint32_t seq_ = 0;
  std::vector<char> request_;
  std::vector<char> reply_;
};

// ---------------------------------------------------------------------------------------------

class NetlinkReader final : public ConntrackReader {
 public:
  std::error_code dump(const std::function<void(const FlowEntry&)>& visit) override {
    std::error_code ec;
    MnlSocketPtr sock = open_socket(0, 0, ec);
    if (!sock) return ec;
    std::vector<char> buf(kReceiveBuffer);
    const uint32_t seq = 1;
    // AF_UNSPEC: one dump covers IPv4 and IPv6.
    nlmsghdr* nlh =
        put_ct_request(buf.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq, AF_UNSPEC, nullptr);
    if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) return errno_code(errno);

    std::vector<FlowEntry> batch;
    for (bool done = false; !done;) {
      ssize_t n = receive(sock.get(), buf);
      if (n < 0) return errno_code(static_cast<int>(-n));
      batch.clear();
      ec = parse_datagram(buf.data(), static_cast<int>(n), seq, batch, done);
      for (const FlowEntry& e : batch) visit(e);
      if (ec) return ec;
    }
    return {};
  }

 private:
  // Collects the entries of one datagram; `done` on NLMSG_DONE or an error.
  static std::error_code parse_datagram(const char* data, int len, uint32_t seq,
                                        std::vector<FlowEntry>& out, bool& done) {
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_seq != seq) continue;
      if (nlh->nlmsg_type == NLMSG_DONE) {
        done = true;
        return {};
      }
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        done = true;
        int err = nlmsg_error_of(nlh);
        return err == 0 ? std::error_code{} : errno_code(err);
      }
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
        done = true;  // the table changed under a multi-part dump in a way the kernel flags
        return std::make_error_code(std::errc::interrupted);
      }
      FlowEntry e;
      if (is_ctnetlink(nlh) && parse_entry(nlh, e)) out.push_back(e);
    }
    return {};
  }
};

// ---------------------------------------------------------------------------------------------

class NetlinkEvents final : public ConntrackEvents {
 public:
  explicit NetlinkEvents(MnlSocketPtr s) : sock_(std::move(s)), buf_(kReceiveBuffer) {}

  int fd() const override { return mnl_socket_get_fd(sock_.get()); }

  std::error_code drain(const std::function<void(const FlowChange&)>& on_change) override {
    for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
      ssize_t n = receive(sock_.get(), buf_);
      if (n == -ENOBUFS) {
        overrun_ = true;  // events were dropped; keep delivering what is still queued
        continue;
      }
      if (n == -EAGAIN || n == -EWOULDBLOCK) break;
      if (n < 0) return errno_code(static_cast<int>(-n));
      batch_.clear();
      parse_datagram(buf_.data(), static_cast<int>(n), batch_);
      for (const FlowChange& c : batch_) on_change(c);
    }
    if (overrun_) {
      overrun_ = false;
      return std::make_error_code(std::errc::no_buffer_space);
    }
    return {};
  }

 private:
  static void parse_datagram(const char* data, int len, std::vector<FlowChange>& out) {
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (!is_ctnetlink(nlh)) continue;
      FlowChange c;
      switch (nlh->nlmsg_type & 0xff) {
        case IPCTNL_MSG_CT_NEW:
          c.kind = (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ? FlowChangeKind::New
                                                                    : FlowChangeKind::Update;
          break;
        case IPCTNL_MSG_CT_DELETE:
          c.kind = FlowChangeKind::Destroy;
          break;
        default:
          continue;
      }
      if (parse_entry(nlh, c.entry)) out.push_back(c);
    }
  }

  MnlSocketPtr sock_;
  std::vector<char> buf_;
  std::vector<FlowChange> batch_;
  bool overrun_ = false;
};

// SO_RCVBUFFORCE passes rmem_max (needs CAP_NET_ADMIN); SO_RCVBUF is the unprivileged
// fallback, capped by rmem_max.
std::error_code set_receive_buffer(mnl_socket* s, size_t bytes) {
  if (bytes == 0) return {};
  int size = bytes > INT_MAX ? INT_MAX : static_cast<int>(bytes);
  int fd = mnl_socket_get_fd(s);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0) return {};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0) return {};
  return errno_code(errno);
}

}  // namespace

std::unique_ptr<ConntrackWriter> make_netlink_writer(std::error_code& ec) {
  MnlSocketPtr s = open_socket(0, 0, ec);
  if (!s) return nullptr;
  return std::make_unique<NetlinkWriter>(std::move(s));
}

std::unique_ptr<ConntrackReader> make_netlink_reader(std::error_code& ec) {
  // Probe once so a missing ctnetlink or permission problem shows at start-up.
  if (!open_socket(0, 0, ec)) return nullptr;
  return std::make_unique<NetlinkReader>();
}

std::unique_ptr<ConntrackEvents> make_netlink_events(size_t rcvbuf_bytes, std::error_code& ec) {
  // ctnetlink events of both families arrive on the same three groups.
  MnlSocketPtr s = open_socket(SOCK_NONBLOCK, NFCT_ALL_CT_GROUPS, ec);
  if (!s) return nullptr;
  ec = set_receive_buffer(s.get(), rcvbuf_bytes);
  if (ec) return nullptr;
  return std::make_unique<NetlinkEvents>(std::move(s));
}

}  // namespace fwha::sync
