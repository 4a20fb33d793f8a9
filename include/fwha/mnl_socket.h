// Owning handle of a libmnl netlink socket, shared by every kernel adapter (conntrack,
// expectations, addresses, links).
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cerrno>
#include <memory>
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

}  // namespace fwha
