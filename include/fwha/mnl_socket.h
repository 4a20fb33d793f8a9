// Owning handle of a libmnl netlink socket, shared by every kernel adapter (conntrack,
// expectations, addresses, links).
#pragma once

#include <libmnl/libmnl.h>

#include <memory>

namespace fwha {

struct MnlSocketCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocketPtr = std::unique_ptr<mnl_socket, MnlSocketCloser>;

}  // namespace fwha
