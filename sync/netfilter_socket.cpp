#include "sync/netfilter_socket.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace fwha::sync {

MnlSocketPtr open_netfilter_socket(int flags, unsigned groups, std::error_code& ec) {
  MnlSocketPtr s(mnl_socket_open2(NETLINK_NETFILTER, flags | SOCK_CLOEXEC));
  if (!s || mnl_socket_bind(s.get(), groups, MNL_SOCKET_AUTOPID) < 0) {
    ec = errno_code(errno);
    return nullptr;
  }
  ec.clear();
  return s;
}

ssize_t receive_from_kernel(mnl_socket* s, std::vector<char>& buf, int flags) {
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = recvmsg(mnl_socket_get_fd(s), &msg, flags);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (from.nl_pid != 0) continue;  // not the kernel: a stray unicast from another socket
    if (msg.msg_flags & MSG_TRUNC) return -ENOSPC;
    return n;
  }
}

}  // namespace fwha::sync
