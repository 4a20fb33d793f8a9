// Owning handle of a libmnl netlink socket, shared by every kernel adapter (conntrack,
// expectations, addresses, links).
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cerrno>
#include <memory>
#include <span>
#include <system_error>

namespace fwha {

struct MnlSocketCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocketPtr = std::unique_ptr<mnl_socket, MnlSocketCloser>;

// An rtnetlink socket for requests (no multicast groups), as the address and link adapters
// use; null with `ec` set when the kernel refuses.
inline MnlSocketPtr open_route_socket(std::error_code& ec) {
  MnlSocketPtr nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    ec = {errno, std::generic_category()};
    return nullptr;
  }
  return nl;
}

// Sends one request (built with NLM_F_ACK) and reads until its ACK or error, handing each
// answer to `on_reply` (may be null). `buf` receives the answers; it may be the buffer `nlh`
// was built in, which is sent before it is reused. A request answers with a few datagrams at
// most (a reply and an ACK), so the read is bounded: anything longer is a protocol error.
inline std::error_code route_transact(mnl_socket* nl, const nlmsghdr* nlh, std::span<char> buf,
                                      mnl_cb_t on_reply = nullptr, void* data = nullptr) {
  const uint32_t seq = nlh->nlmsg_seq;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return {errno, std::generic_category()};
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) return {errno, std::generic_category()};
    const int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, mnl_socket_get_portid(nl),
                             on_reply, data);
    if (r < 0) return {errno, std::generic_category()};
    if (r == MNL_CB_STOP) return {};
  }
  return std::make_error_code(std::errc::protocol_error);
}

}  // namespace fwha
