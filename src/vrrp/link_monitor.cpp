#include "vrrp/link_monitor.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "util/log.h"
#include "fwha/unique_fd.h"

namespace fwha::vrrp {

namespace {

constexpr unsigned kCarrierFlags = unsigned{IFF_UP} | unsigned{IFF_LOWER_UP};

}  // namespace

LinkMonitor::LinkMonitor(boost::asio::io_context& io) : io_(io), buf_(MNL_SOCKET_BUFFER_SIZE) {}

LinkMonitor::~LinkMonitor() {
  if (descriptor_) {
    boost::system::error_code ec;
    descriptor_->close(ec);
  }
}

std::error_code LinkMonitor::open(OnChange on_change) {
  on_change_ = std::move(on_change);
  sock_.reset(mnl_socket_open(NETLINK_ROUTE));
  if (!sock_) return {errno, std::generic_category()};
  if (mnl_socket_bind(sock_.get(), RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
    return {errno, std::generic_category()};
  }
  // Asio closes what it is given; the mnl socket closes its own: hand Asio a duplicate.
  const int fd = ::dup(mnl_socket_get_fd(sock_.get()));
  if (fd < 0) return {errno, std::generic_category()};
  descriptor_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
  wait();
  return {};
}

bool LinkMonitor::carrier(const std::string& ifname) {
  UniqueFd s{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (!s) return true;  // cannot tell: do not invent a fault
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return true;
  // SIOCGIFFLAGS reports the short flags; IFF_LOWER_UP needs IFF_RUNNING as the proxy here.
  const unsigned flags = static_cast<unsigned short>(ifr.ifr_flags);
  return (flags & IFF_UP) && (flags & IFF_RUNNING);
}

void LinkMonitor::wait() {
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec) return;
                            read();
                            wait();
                          });
}

void LinkMonitor::read() {
  for (;;) {
    const ssize_t n = ::recv(mnl_socket_get_fd(sock_.get()), buf_.data(), buf_.size(),
                             MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ENOBUFS) {
        // Link events were lost: the owner re-reads every interface's carrier.
        log::warning("vrrp", "link events lost (ENOBUFS): re-reading carrier");
        if (on_change_) on_change_(-1, true);
        continue;
      }
      return;  // EAGAIN: drained
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) continue;
      if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(ifinfomsg))) continue;  // malformed
      const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
      const bool up = nlh->nlmsg_type == RTM_NEWLINK &&
                      (ifi->ifi_flags & kCarrierFlags) == kCarrierFlags;
      if (on_change_) on_change_(ifi->ifi_index, up);
    }
  }
}

}  // namespace fwha::vrrp
