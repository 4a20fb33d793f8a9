// The real ConntrackWriter/Reader/Events over ctnetlink, with libmnl for the sockets and
// libnetfilter_conntrack only for attribute (de)serialisation (nfct_nlmsg_build/parse): we
// keep control of sequence numbers, answers and buffers.
//
// Choices, and why:
// - Writer: batched. A send packs up to ~1k requests (128 KiB); only the last asks for an ACK,
//   so the kernel answers just the failures plus that one ACK, and since it handles a send
//   synchronously and in order, that ACK means every answer of the send is queued. Answers
//   map back to requests by sequence number (AckWindow). Measured on 6.18 (2 vCPUs, 100k
//   entries, batches of 64-1024): creates 700k/s UDP, 400k/s TCP+SNAT (one request per
//   syscall: 160k/130k); updates 500-850k/s; deletes 460-830k/s. An ACK on every request
//   instead costs 10-40%, and collapsed to ~130k/s for UDP creates with 1024 per send.
// - Which request a change needs, and the retry after a wrong guess (EEXIST -> update,
//   ENOENT -> create, EBUSY -> update without status), is the pure next_request(); a batch
//   goes out in passes until every change has its final answer. Changes to the same entry go
//   out in separate rounds (same_entry_rounds), so their order holds across retries.
// - Every answer costs ~832 bytes of receive buffer (skb truesize) even at 36 bytes of
//   payload, so the writer's buffer is forced large and the requests per send are capped by
//   what it can hold; NETLINK_CAP_ACK keeps error answers from echoing the request. If the
//   answers of a send are lost anyway (ENOBUFS), its requests are replayed one by one.
// - Messages are walked by hand (mnl_nlmsg_ok/next) instead of mnl_cb_run: no C callback
//   stands between us and the caller's code, so a throwing visitor cannot unwind through C.
// - Reader opens a socket per dump: an abandoned dump (visitor threw) leaves nothing behind
//   that could make the next dump fail with EBUSY or read stale messages.
// - Events: NETLINK_NO_ENOBUFS is deliberately NOT set. An overrun is reported once, after
//   the events still queued have been delivered, and the caller resyncs.
// - Answers and events are read with recvmmsg: each is an skb of its own and recvmsg returns
//   one skb, so one syscall per answer or event otherwise.
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <memory>
#include <span>
#include <vector>

#include "sync/conntrack_convert.h"
#include "sync/netfilter_socket.h"
#include "sync/conntrack_port.h"
#include "util/log.h"

namespace fwha::sync {
namespace {

// Bytes of requests per send (writer). Must stay under the socket's send buffer (sendmsg
// refuses a datagram larger than sk_sndbuf - 32: EMSGSIZE); 212992 by default.
constexpr size_t kSendBytes = 128 * 1024;
// Receive buffer asked for the writer's answers (the kernel doubles it), and what one answer
// costs there (832 bytes measured, rounded up).
constexpr int kAnswerBufferBytes = 4 << 20;
constexpr size_t kAnswerTruesize = 1024;
// The kernel handles a whole send inside sendmsg, and a kernel without full preemption (this
// one is PREEMPT_NONE) does not reschedule in between: a send of a thousand creates is a
// 5-10 ms stretch during which a real-time thread woken on that CPU - our own election
// thread - waits. 256 keeps it near a millisecond; a syscall per 256 entries costs nothing.
constexpr size_t kMaxRequestsPerSend = 256;
// Answers read per recvmmsg, and the room for one: 36 bytes with NETLINK_CAP_ACK.
constexpr size_t kAnswersPerRead = 128;
constexpr size_t kAnswerBytes = 256;
// Large receive buffers let the kernel pack more dump messages per datagram.
constexpr size_t kReceiveBuffer = 32768;
// Events read per recvmmsg, and the room for one (an event is a few hundred bytes).
constexpr size_t kEventsPerRead = 64;
constexpr size_t kEventBytes = 8192;
// Bound on datagrams read per drain(), so a flood cannot starve the event loop; the fd stays
// readable and the next poll round continues.
constexpr int kMaxReadsPerDrain = 65536;

// Appends one ctnetlink request at `at` (which must have kMaxCtRequestBytes free).
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

int set_int_option(mnl_socket* s, int level, int name, int value) {
  return setsockopt(mnl_socket_get_fd(s), level, name, &value, sizeof value);
}

int get_int_option(mnl_socket* s, int level, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  return getsockopt(mnl_socket_get_fd(s), level, name, &value, &len) == 0 ? value : 0;
}

uint8_t family_of(const nf_conntrack* ct) { return nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO); }

// errno of an NLMSG_ERROR message (0 for an ACK).
int nlmsg_error_of(const nlmsghdr* nlh) {
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) return EBADMSG;
  return -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
}

// Many datagrams per syscall (recvmmsg): netlink hands out one skb per recvmsg, and every
// answer and every event is an skb of its own.
class BulkReceiver {
 public:
  BulkReceiver(size_t slots, size_t slot_bytes)
      : slot_bytes_(slot_bytes), buf_(slots * slot_bytes), iov_(slots), from_(slots),
        msgs_(slots) {
    for (size_t i = 0; i < slots; ++i) {
      iov_[i] = {buf_.data() + i * slot_bytes, slot_bytes};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_name = &from_[i];
    }
  }

  BulkReceiver(const BulkReceiver&) = delete;  // msgs_ and iov_ point into buf_
  BulkReceiver& operator=(const BulkReceiver&) = delete;

  // Up to `slots` datagrams without waiting; returns how many, or -errno (-EAGAIN: none).
  int receive(mnl_socket* s) {
    for (size_t i = 0; i < msgs_.size(); ++i) msgs_[i].msg_hdr.msg_namelen = sizeof from_[i];
    for (;;) {
      int n = recvmmsg(mnl_socket_get_fd(s), msgs_.data(), static_cast<unsigned>(msgs_.size()),
                       MSG_DONTWAIT, nullptr);
      if (n >= 0) return n;
      if (errno != EINTR) return -errno;
    }
  }

  // Datagram i of the last receive(); empty if it did not come from the kernel. A truncated
  // one is returned cut (the parsers stop at its incomplete message); `truncated` tells.
  std::span<const char> datagram(size_t i, bool& truncated) const {
    truncated = (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    if (from_[i].nl_pid != 0) return {};
    return {buf_.data() + i * slot_bytes_, std::min<size_t>(msgs_[i].msg_len, slot_bytes_)};
  }

 private:
  size_t slot_bytes_;
  std::vector<char> buf_;
  std::vector<iovec> iov_;
  std::vector<sockaddr_nl> from_;
  std::vector<mmsghdr> msgs_;
};

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
  NetlinkWriter(MnlSocketPtr s, size_t send_bytes, size_t max_per_send)
      : sock_(std::move(s)),
        max_per_send_(max_per_send),
        request_(send_bytes) {}

  std::error_code apply(const FlowChange& change) override {
    static constexpr uint32_t kOnly[] = {0};
    single_error_.assign(1, std::error_code{});
    apply_round(std::span<const FlowChange>(&change, 1), kOnly, single_error_);
    return single_error_.front();
  }

  void apply_batch(std::span<const FlowChange> changes,
                   std::vector<std::error_code>& errors) override {
    errors.assign(changes.size(), std::error_code{});
    if (changes.empty()) return;
    const EntryRounds rounds = same_entry_rounds(changes);
    for (size_t r = 0; r < rounds.count(); ++r) apply_round(changes, rounds.round(r), errors);
  }

 private:
  struct Pending {
    uint32_t index;     // into the batch
    CtRequest request;  // to send now
    unsigned sent;      // requests of this change so far, this one included
    uint8_t omit = kOmitNone;  // CtOmit: attributes the kernel refused for this change
  };

 public:
  WriterCounters counters() const override { return counters_; }

 private:
  // A refused label set or helper is left out and the rest of the entry applied; the cause is
  // a configuration difference between the nodes, so it is said once, plainly, and counted.
  void note_omitted(uint8_t before, uint8_t after) {
    if ((after & kOmitLabels) && !(before & kOmitLabels) && ++counters_.labels_refused == 1) {
      log::error("sync", "conntrack labels refused by this kernel (ENOSPC: no connlabel "
                         "extension in this network namespace; the ruleset must use `ct label` "
                         "as on the peer): entries are written without their labels, "
                         "count in `fwhactl status`");
    }
    if ((after & kOmitHelper) && !(before & kOmitHelper) && ++counters_.helpers_refused == 1) {
      log::error("sync", "conntrack helper refused by this kernel (EOPNOTSUPP: helper not "
                         "available, or the local entry has none): entries are written without "
                         "it, and their helper's expectations cannot follow");
    }
  }

  // One round: changes[i] for i in `round` address distinct entries.
  void apply_round(std::span<const FlowChange> changes, std::span<const uint32_t> round,
                   std::vector<std::error_code>& errors) {
    pending_.clear();
    for (uint32_t i : round) {
      if (addresses_consistent(changes[i])) {
        pending_.push_back({i, first_request(changes[i]), 1});
      } else {
        errors[i] = std::make_error_code(std::errc::invalid_argument);
      }
    }
    settle(changes, errors);
  }

  // Sends the pending requests pass after pass (a pass is as many sends as its requests fill)
  // until every change of the round has its final answer.
  void settle(std::span<const FlowChange> changes, std::vector<std::error_code>& errors) {
    while (!pending_.empty()) {
      answers_.assign(pending_.size(), 0);
      for (size_t k = 0; k < pending_.size();) k = send_chunk(changes, k);
      retry_.clear();
      for (size_t k = 0; k < pending_.size(); ++k) {
        const Pending& p = pending_[k];
        const CtNext next =
            next_request(changes[p.index], p.request, answers_[k], p.sent, p.omit);
        if (next.omit != p.omit) note_omitted(p.omit, next.omit);
        if (next.request) {
          retry_.push_back({p.index, *next.request, p.sent + 1, next.omit});
        } else if (next.error != 0) {
          errors[p.index] = errno_code(next.error);
        }
      }
      pending_.swap(retry_);
    }
  }

  // Packs pending_[begin..] into one send, bounded by the buffer and by the receive buffer's
  // room for answers, sends it and fills answers_. Slot k has sequence number first_seq + k;
  // only the last message asks for an ACK (the others are answered only when they fail).
  size_t send_chunk(std::span<const FlowChange> changes, size_t begin) {
    const uint32_t first_seq = seq_ + 1;
    size_t used = 0;
    size_t end = begin;
    nlmsghdr* last = nullptr;
    size_t last_slot = 0;
    for (; end < pending_.size() && end - begin < max_per_send_ &&
           used + kMaxCtRequestBytes <= request_.size();
         ++end) {
      const Pending& p = pending_[end];
      nlmsghdr* nlh =
          build(changes[p.index], p.request, p.omit, ++seq_, request_.data() + used);
      if (nlh == nullptr) {
        answers_[end] = EINVAL;
        continue;
      }
      used += MNL_ALIGN(nlh->nlmsg_len);
      last = nlh;
      last_slot = end - begin;
    }
    if (last == nullptr) return end;
    last->nlmsg_flags |= NLM_F_ACK;
    const std::span<int> slots(answers_.data() + begin, end - begin);
    if (mnl_socket_sendto(sock_.get(), request_.data(), used) < 0) {
      const int err = errno;
      for (int& a : slots) a = a != 0 ? a : err;
      return end;
    }
    AckWindow window(first_seq, slots, last_slot);
    if (!read_answers(window)) replay(changes, begin, end);
    return end;
  }

  // The kernel handles a send synchronously inside sendmsg, so its answers are all queued by
  // now: read without waiting. False when some were lost (ENOBUFS) or are missing.
  bool read_answers(AckWindow& window) {
    while (!window.complete()) {
      const int n = answers_in_.receive(sock_.get());
      if (n < 0) return false;
      for (int i = 0; i < n; ++i) {
        bool truncated = false;
        const std::span<const char> d = answers_in_.datagram(static_cast<size_t>(i), truncated);
        window.collect(d.data(), d.size());
      }
    }
    return true;
  }

  // A send whose answers were lost: drop what is still queued (until the queue is empty the
  // kernel drops further answers silently, without a new ENOBUFS), then its requests again,
  // one per send with its own ACK. Safe, since each request is idempotent for its change (a
  // repeated create answers EEXIST and goes on as an update; a repeated delete ENOENT) and a
  // round's entries are distinct.
  void replay(std::span<const FlowChange> changes, size_t begin, size_t end) {
    for (int n = 0; n != -EAGAIN;) {
      n = answers_in_.receive(sock_.get());
      if (n < 0 && n != -ENOBUFS && n != -EAGAIN) break;
    }
    for (size_t k = begin; k < end; ++k) {
      answers_[k] =
          request_one(changes[pending_[k].index], pending_[k].request, pending_[k].omit);
    }
  }

  // Never blocks: the answer is queued by the time sendmsg returns, or it was lost (ENOBUFS).
  int request_one(const FlowChange& c, CtRequest r, uint8_t omit) {
    const uint32_t seq = ++seq_;
    nlmsghdr* nlh = build(c, r, omit, seq, request_.data());
    if (nlh == nullptr) return EINVAL;
    nlh->nlmsg_flags |= NLM_F_ACK;
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return errno;
    int answer = 0;
    AckWindow window(seq, std::span<int>(&answer, 1), 0);
    return read_answers(window) ? answer : ENOBUFS;
  }

  // The request `r` for `c` at `at` (kMaxCtRequestBytes free); nullptr if it cannot be built.
  static nlmsghdr* build(const FlowChange& c, CtRequest r, uint8_t omit, uint32_t seq,
                         char* at) {
    NfConntrackPtr ct;
    uint8_t msg = IPCTNL_MSG_CT_NEW;
    uint16_t flags = 0;
    switch (r) {
      case CtRequest::CreateExcl:
        ct = to_nf_conntrack_for_create(c.entry, omit);
        flags = NLM_F_CREATE | NLM_F_EXCL;
        break;
      case CtRequest::Upsert:
        ct = to_nf_conntrack_for_create(c.entry, omit);
        flags = NLM_F_CREATE;
        break;
      case CtRequest::Update:
        ct = to_nf_conntrack_for_update(c.entry, omit);
        break;
      case CtRequest::UpdateNoStatus:
        ct = to_nf_conntrack_for_update(c.entry, omit);
        if (ct) nfct_attr_unset(ct.get(), ATTR_STATUS);
        break;
      case CtRequest::Delete:
      case CtRequest::DeleteCopy:
        ct = to_nf_conntrack_for_delete(c.entry);
        msg = IPCTNL_MSG_CT_DELETE;
        break;
      case CtRequest::DeleteReplyHolder: {
        const uint8_t family = c.entry.reply.src.family == Family::V4 ? AF_INET : AF_INET6;
        nlmsghdr* nlh = put_ct_request(at, IPCTNL_MSG_CT_DELETE, 0, seq, family, nullptr);
        append_reply_tuple(nlh, c.entry);
        return nlh;
      }
    }
    if (!ct) return nullptr;
    nlmsghdr* nlh = put_ct_request(at, msg, flags, seq, family_of(ct.get()), ct.get());
    if (nlh != nullptr && msg == IPCTNL_MSG_CT_NEW) {
      append_raw_attributes(nlh, c.entry, r == CtRequest::CreateExcl || r == CtRequest::Upsert);
    }
    return nlh;
  }

  MnlSocketPtr sock_;
  size_t max_per_send_;
  uint32_t seq_ = 0;
  std::vector<char> request_;
  std::vector<Pending> pending_;
  std::vector<Pending> retry_;
  std::vector<int> answers_;  // per pending_ slot: 0 or the kernel's errno
  std::vector<std::error_code> single_error_;  // apply()'s result, reused
  WriterCounters counters_;
  BulkReceiver answers_in_{kAnswersPerRead, kAnswerBytes};
};

// ---------------------------------------------------------------------------------------------

// One dump of the table, read a datagram at a time: the kernel fills the next datagram when
// we ask for it, so a dump can pause between parts (the answer to a repair is paced by the
// peer's acks) without holding the table.
class NetlinkDump final : public ConntrackDump {
 public:
  NetlinkDump(MnlSocketPtr s) : sock_(std::move(s)), buf_(kReceiveBuffer) {}

  std::error_code start() {
    // AF_UNSPEC: one dump covers IPv4 and IPv6.
    nlmsghdr* nlh =
        put_ct_request(buf_.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, kSeq, AF_UNSPEC, nullptr);
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return errno_code(errno);
    return {};
  }

  bool next(std::vector<FlowEntry>& out, std::error_code& ec) override {
    ec.clear();
    if (done_) return false;
    const ssize_t n = receive_from_kernel(sock_.get(), buf_, 0);
    if (n < 0) {
      done_ = true;
      ec = errno_code(static_cast<int>(-n));
      return false;
    }
    ec = parse_datagram(buf_.data(), static_cast<int>(n), out, done_);
    return !done_;
  }

  uint64_t uncarried() const override { return uncarried_; }

 private:
  static constexpr uint32_t kSeq = 1;

  // Collects the entries of one datagram; `done` on NLMSG_DONE or an error.
  std::error_code parse_datagram(const char* data, int len, std::vector<FlowEntry>& out,
                                 bool& done) {
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_seq != kSeq) continue;
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
      if (!is_ctnetlink(nlh)) continue;
      FlowEntry e;
      if (parse_conntrack_message(nlh, e)) {
        out.push_back(e);
      } else {
        ++uncarried_;
      }
    }
    return {};
  }

  MnlSocketPtr sock_;
  std::vector<char> buf_;
  uint64_t uncarried_ = 0;
  bool done_ = false;
};

class NetlinkReader final : public ConntrackReader {
 public:
  std::error_code dump(const std::function<void(const FlowEntry&)>& visit) override {
    std::error_code ec;
    std::unique_ptr<ConntrackDump> d = open_dump(ec);
    if (!d) return ec;
    std::vector<FlowEntry> batch;
    for (bool more = true; more;) {
      batch.clear();
      more = d->next(batch, ec);
      for (const FlowEntry& e : batch) visit(e);
    }
    return ec;
  }

  std::error_code get(const FlowTuple& original, uint16_t zone, FlowEntry& out) override {
    std::error_code ec;
    MnlSocketPtr sock = open_netfilter_socket(0, 0, ec);
    if (!sock) return ec;
    FlowEntry key;
    key.original = original;
    key.zone = zone;
    NfConntrackPtr ct = to_nf_conntrack_for_delete(key);  // original tuple + zone: a lookup key
    if (!ct) return std::make_error_code(std::errc::not_enough_memory);
    std::vector<char> buf(kReceiveBuffer);
    const uint32_t seq = 1;
    nlmsghdr* nlh =
        put_ct_request(buf.data(), IPCTNL_MSG_CT_GET, NLM_F_ACK, seq, family_of(ct.get()), ct.get());
    if (nlh == nullptr) return std::make_error_code(std::errc::invalid_argument);
    if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) return errno_code(errno);
    bool found = false;
    for (;;) {
      const ssize_t n = receive_from_kernel(sock.get(), buf, 0);
      if (n < 0) return errno_code(static_cast<int>(-n));
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_seq != seq) continue;
        if (m->nlmsg_type == NLMSG_ERROR) {
          const int err = nlmsg_error_of(m);
          if (err != 0) return errno_code(err);
          return found ? std::error_code{} : errno_code(ENOENT);
        }
        if (is_ctnetlink(m) && parse_conntrack_message(m, out)) found = true;
      }
    }
  }

  // Per network namespace, like the table: the file shows the reader's own namespace.
  std::optional<uint64_t> count() override {
    std::ifstream f("/proc/sys/net/netfilter/nf_conntrack_count");
    uint64_t n = 0;
    if (!(f >> n)) return std::nullopt;
    return n;
  }

  std::unique_ptr<ConntrackDump> open_dump(std::error_code& ec) override {
    MnlSocketPtr sock = open_netfilter_socket(0, 0, ec);
    if (!sock) return nullptr;
    auto d = std::make_unique<NetlinkDump>(std::move(sock));
    if ((ec = d->start())) return nullptr;
    return d;
  }
};

// ---------------------------------------------------------------------------------------------

class NetlinkEvents final : public ConntrackEvents {
 public:
  explicit NetlinkEvents(MnlSocketPtr s) : sock_(std::move(s)) {}

  int fd() const override { return mnl_socket_get_fd(sock_.get()); }

  // Many events per syscall: each event is an skb of its own, and netlink hands out one skb
  // per recvmsg, so recvmmsg (2-3x the events per CPU-second of one recvmsg per event,
  // measured on 6.18) rather than a larger buffer.
  std::error_code drain(const std::function<void(const FlowChange&)>& on_change) override {
    for (int reads = 0; reads < kMaxReadsPerDrain;) {
      const int n = in_.receive(sock_.get());
      if (n == -ENOBUFS) {
        overrun_ = true;  // events were dropped; keep delivering what is still queued
        ++reads;
        continue;
      }
      if (n == -EAGAIN || n == -EWOULDBLOCK) break;
      if (n < 0) return errno_code(-n);
      batch_.clear();
      for (int i = 0; i < n; ++i) {
        bool truncated = false;
        const std::span<const char> d = in_.datagram(static_cast<size_t>(i), truncated);
        if (truncated) overrun_ = true;  // an event larger than a slot is lost like a drop
        count_uncarried(parse_event_datagram(d.data(), static_cast<int>(d.size()), batch_));
      }
      for (const FlowChange& c : batch_) on_change(c);
      reads += n;
      // Fewer than asked for: the queue was empty when the kernel stopped, so the read that
      // would say EAGAIN is saved (a syscall is several microseconds on a PVM guest, and this
      // is one per drain). Whatever arrives meanwhile is taken by the next drain.
      if (static_cast<size_t>(n) < kEventsPerRead) break;
    }
    if (overrun_) {
      overrun_ = false;
      return std::make_error_code(std::errc::no_buffer_space);
    }
    return {};
  }

  uint64_t uncarried() const override { return uncarried_; }

  std::optional<Backlog> backlog() const override {
    uint32_t info[SK_MEMINFO_VARS] = {};
    socklen_t len = sizeof info;
    if (getsockopt(fd(), SOL_SOCKET, SO_MEMINFO, info, &len) != 0 ||
        len < sizeof(uint32_t) * (SK_MEMINFO_RCVBUF + 1)) {
      return std::nullopt;
    }
    return Backlog{info[SK_MEMINFO_RMEM_ALLOC], info[SK_MEMINFO_RCVBUF]};
  }

 private:
  void count_uncarried(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (log::should_log(++uncarried_)) {
        log::warning("sync", "conntrack event not carried (unparseable, or not IPv4/IPv6) "
                             "count=" + std::to_string(uncarried_));
      }
    }
  }

  MnlSocketPtr sock_;
  BulkReceiver in_{kEventsPerRead, kEventBytes};
  std::vector<FlowChange> batch_;
  uint64_t uncarried_ = 0;
  bool overrun_ = false;
};

// SO_RCVBUFFORCE passes rmem_max (needs CAP_NET_ADMIN); SO_RCVBUF is the unprivileged
// fallback, capped by net.core.rmem_max without an error (the kernel's default is 212992
// bytes, ~160 events of ~1.3 KiB; the lab's guest has 4 MiB). Each overrun is repaired, but
// the operator should know why they come, so the fallback says what it got (the kernel
// reports twice what was set).
std::error_code set_receive_buffer(mnl_socket* s, size_t bytes) {
  if (bytes == 0) return {};
  int size = bytes > INT_MAX ? INT_MAX : static_cast<int>(bytes);
  int fd = mnl_socket_get_fd(s);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0) return {};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0) return errno_code(errno);
  const auto effective = static_cast<size_t>(get_int_option(s, SOL_SOCKET, SO_RCVBUF)) / 2;
  if (effective < bytes) {
    log::warning("sync", "conntrack event buffer is " + std::to_string(effective / 1024) +
                             " KiB, not the " + std::to_string(bytes / 1024) +
                             " KiB of sync.event_buffer_kib: without CAP_NET_ADMIN the kernel "
                             "caps it at net.core.rmem_max; expect overruns (each repaired) "
                             "under load");
  }
  return {};
}

}  // namespace

std::unique_ptr<ConntrackWriter> make_netlink_writer(std::error_code& ec) {
  MnlSocketPtr s = open_netfilter_socket(0, 0, ec);
  if (!s) return nullptr;
  // Error answers carry only the request's header, not the whole request echoed back.
  set_int_option(s.get(), SOL_NETLINK, NETLINK_CAP_ACK, 1);
  // Room for the answers of a whole send. Without CAP_NET_ADMIN, SO_RCVBUF is capped by
  // rmem_max and the sends get smaller, not unsafe.
  if (set_int_option(s.get(), SOL_SOCKET, SO_RCVBUFFORCE, kAnswerBufferBytes) != 0)
    set_int_option(s.get(), SOL_SOCKET, SO_RCVBUF, kAnswerBufferBytes);
  const auto rcvbuf = static_cast<size_t>(get_int_option(s.get(), SOL_SOCKET, SO_RCVBUF));
  const size_t max_per_send = std::clamp<size_t>(rcvbuf / kAnswerTruesize, 1, kMaxRequestsPerSend);
  // sendmsg refuses datagrams above sk_sndbuf - 32.
  const auto sndbuf = static_cast<size_t>(get_int_option(s.get(), SOL_SOCKET, SO_SNDBUF));
  const size_t send_bytes = std::clamp<size_t>(sndbuf > 64 ? sndbuf - 64 : 0,
                                               kMaxCtRequestBytes, kSendBytes);
  return std::make_unique<NetlinkWriter>(std::move(s), send_bytes, max_per_send);
}

std::unique_ptr<ConntrackReader> make_netlink_reader(std::error_code& ec) {
  // Probe once so a missing ctnetlink or permission problem shows at start-up.
  if (!open_netfilter_socket(0, 0, ec)) return nullptr;
  return std::make_unique<NetlinkReader>();
}

std::unique_ptr<ConntrackEvents> make_netlink_events(size_t rcvbuf_bytes, std::error_code& ec) {
  // ctnetlink events of both families arrive on the same three groups.
  MnlSocketPtr s = open_netfilter_socket(SOCK_NONBLOCK, NFCT_ALL_CT_GROUPS, ec);
  if (!s) return nullptr;
  ec = set_receive_buffer(s.get(), rcvbuf_bytes);
  if (ec) return nullptr;
  return std::make_unique<NetlinkEvents>(std::move(s));
}

}  // namespace fwha::sync
