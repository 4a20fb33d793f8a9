// The real ExpectWriter/Reader/Events over ctnetlink's expectation subsystem. Expectations are
// few (one per FTP PORT), so the writer sends one request at a time and waits for its ACK:
// nothing here needs conntrack_netlink.cpp's batching.
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <memory>
#include <vector>

#include "sync/expect_convert.h"
#include "sync/expect_port.h"
#include "sync/netfilter_socket.h"

namespace fwha::sync {
namespace {

constexpr size_t kReceiveBytes = 32768;
// Bound on datagrams per drain(), so a flood cannot starve the sync loop.
constexpr int kMaxReadsPerDrain = 4096;

bool is_expect_msg(const nlmsghdr* nlh) {
  return (nlh->nlmsg_type >> 8) == NFNL_SUBSYS_CTNETLINK_EXP;
}

class NetlinkExpectWriter final : public ExpectWriter {
 public:
  explicit NetlinkExpectWriter(MnlSocketPtr s) : sock_(std::move(s)) {}

  std::error_code apply(const ExpectChange& c) override {
    const uint32_t seq = ++seq_;
    nlmsghdr* nlh = c.kind == ExpectChangeKind::New
                        ? build_expect_new(request_.data(), seq, c.entry)
                        : build_expect_delete(request_.data(), seq, c.entry);
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return errno_code(errno);
    // The kernel answers inside sendmsg; the ACK is queued by now.
    for (;;) {
      const ssize_t n = receive_from_kernel(sock_.get(), answer_, MSG_DONTWAIT);
      if (n < 0) return errno_code(static_cast<int>(-n));
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(answer_.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_type != NLMSG_ERROR || m->nlmsg_seq != seq) continue;
        if (m->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) return errno_code(EBADMSG);
        const int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
        if (err == ENOENT && c.kind == ExpectChangeKind::Destroy) return {};
        return err == 0 ? std::error_code{} : errno_code(err);
      }
    }
  }

 private:
  MnlSocketPtr sock_;
  uint32_t seq_ = 0;
  std::vector<char> request_ = std::vector<char>(kMaxExpectRequestBytes);
  std::vector<char> answer_ = std::vector<char>(8192);
};

class NetlinkExpectReader final : public ExpectReader {
 public:
  std::error_code dump(const std::function<void(const ExpectEntry&)>& visit) override {
    std::error_code ec;
    MnlSocketPtr sock = open_netfilter_socket(0, 0, ec);
    if (!sock) return ec;
    std::vector<char> buf(kReceiveBytes);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_GET;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = 1;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_UNSPEC;  // both families
    nfg->version = NFNETLINK_V0;
    if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) return errno_code(errno);
    std::vector<ExpectEntry> batch;
    for (;;) {
      const ssize_t n = receive_from_kernel(sock.get(), buf, 0);
      if (n < 0) return errno_code(static_cast<int>(-n));
      int len = static_cast<int>(n);
      batch.clear();
      for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_type == NLMSG_DONE) {
          for (const ExpectEntry& e : batch) visit(e);
          return {};
        }
        if (m->nlmsg_type == NLMSG_ERROR) {
          const int err = m->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))
                              ? EBADMSG
                              : -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
          for (const ExpectEntry& e : batch) visit(e);
          return err == 0 ? std::error_code{} : errno_code(err);
        }
        ExpectEntry e;
        if (is_expect_msg(m) && parse_expectation(m, e)) batch.push_back(e);
      }
      for (const ExpectEntry& e : batch) visit(e);
    }
  }
};

class NetlinkExpectEvents final : public ExpectEvents {
 public:
  explicit NetlinkExpectEvents(MnlSocketPtr s) : sock_(std::move(s)) {}
  int fd() const override { return mnl_socket_get_fd(sock_.get()); }

  std::error_code drain(const std::function<void(const ExpectChange&)>& on_change) override {
    bool overrun = false;
    for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
      const ssize_t n = receive_from_kernel(sock_.get(), buf_, MSG_DONTWAIT);
      if (n == -ENOBUFS || n == -ENOSPC) {
        overrun = true;
        continue;
      }
      if (n == -EAGAIN || n == -EWOULDBLOCK) break;
      if (n < 0) return errno_code(static_cast<int>(-n));
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (!is_expect_msg(m)) continue;
        ExpectChange c;
        switch (m->nlmsg_type & 0xff) {
          case IPCTNL_MSG_EXP_NEW: c.kind = ExpectChangeKind::New; break;
          case IPCTNL_MSG_EXP_DELETE: c.kind = ExpectChangeKind::Destroy; break;
          default: continue;
        }
        if (parse_expectation(m, c.entry)) on_change(c);
      }
    }
    return overrun ? std::make_error_code(std::errc::no_buffer_space) : std::error_code{};
  }

 private:
  MnlSocketPtr sock_;
  std::vector<char> buf_ = std::vector<char>(kReceiveBytes);
};

}  // namespace

std::unique_ptr<ExpectWriter> make_netlink_expect_writer(std::error_code& ec) {
  MnlSocketPtr s = open_netfilter_socket(0, 0, ec);
  if (!s) return nullptr;
  return std::make_unique<NetlinkExpectWriter>(std::move(s));
}

std::unique_ptr<ExpectReader> make_netlink_expect_reader(std::error_code& ec) {
  if (!open_netfilter_socket(0, 0, ec)) return nullptr;
  return std::make_unique<NetlinkExpectReader>();
}

std::unique_ptr<ExpectEvents> make_netlink_expect_events(std::error_code& ec) {
  // Updates are not subscribed: the kernel reports none that matter for a copy.
  MnlSocketPtr s = open_netfilter_socket(SOCK_NONBLOCK,
                               NF_NETLINK_CONNTRACK_EXP_NEW | NF_NETLINK_CONNTRACK_EXP_DESTROY, ec);
  if (!s) return nullptr;
  return std::make_unique<NetlinkExpectEvents>(std::move(s));
}

}  // namespace fwha::sync
