// What the conntrack and expectation adapters share: a NETLINK_NETFILTER socket and reading
// one datagram from the kernel.
#pragma once

#include <sys/types.h>

#include <system_error>
#include <vector>

#include "fwha/mnl_socket.h"

namespace fwha::sync {

inline std::error_code errno_code(int e) { return {e, std::generic_category()}; }

// A NETLINK_NETFILTER socket (close-on-exec) bound to the multicast `groups` (0: none).
MnlSocketPtr open_netfilter_socket(int flags, unsigned groups, std::error_code& ec);

// Receives one datagram from the kernel (datagrams from other sockets are skipped), retrying
// on EINTR. Returns the bytes read or -errno; -ENOSPC when it was truncated.
ssize_t receive_from_kernel(mnl_socket* s, std::vector<char>& buf, int flags);

}  // namespace fwha::sync
