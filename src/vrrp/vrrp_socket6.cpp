// Raw IPv6 VRRP socket. Choices, and why:
// - The source is set per send with IPV6_PKTINFO (link-local address + interface), not with
//   bind(): a bound socket would keep a link-local address that was still tentative (DAD) at
//   start, or that later changed, and fail or lie from then on; a send from a tentative
//   address fails on its own (EINVAL, logged by the caller) and works once DAD is done.
//   Leaving the choice to the kernel could pick a global address when the link-local one is
//   tentative, which the peer would reject.
// - The checksum is ours (encode_ipv6), not the kernel's (IPV6_CHECKSUM): with the option set,
//   the kernel also silently drops received packets with a bad checksum, and the daemon could
//   not count them.
// - Hop limit, source and destination come from recvmsg(): msg_name, IPV6_HOPLIMIT and
//   IPV6_PKTINFO. A packet without them is still handed over (hop limit -1): the parser
//   rejects it and the daemon counts it.
#include "vrrp/vrrp_socket6.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace fwha::vrrp {
namespace {

sockaddr_in6 vrrp_group_address(int ifindex) {
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  std::memcpy(&to.sin6_addr, kVrrpMulticastV6.data(), kVrrpMulticastV6.size());
  to.sin6_scope_id = static_cast<uint32_t>(ifindex);
  return to;
}

IpAddress from_in6(const in6_addr& a) {
  return *IpAddress::from_bytes(reinterpret_cast<const uint8_t*>(&a), sizeof a);
}

}  // namespace

VrrpSocket6::VrrpSocket6(boost::asio::io_context& io, std::string ifname, int ifindex,
                         IpAddress link_local)
    : ifname_(std::move(ifname)), ifindex_(ifindex), link_local_(link_local), descriptor_(io) {}

VrrpSocket6::~VrrpSocket6() { close(); }

std::error_code VrrpSocket6::open(ReceiveHandler on_packet) {
  on_packet_ = std::move(on_packet);
  int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, kIpProtoVrrp);
  if (fd < 0) return {errno, std::generic_category()};
  descriptor_.assign(fd);  // owns fd from here on
  auto fail = [&]() {
    std::error_code ec{errno, std::generic_category()};
    close();
    return ec;
  };
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname_.c_str(),
                 static_cast<socklen_t>(ifname_.size())) < 0)
    return fail();
  ipv6_mreq mreq{};
  std::memcpy(&mreq.ipv6mr_multiaddr, kVrrpMulticastV6.data(), kVrrpMulticastV6.size());
  mreq.ipv6mr_interface = static_cast<unsigned>(ifindex_);
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof mreq) < 0) return fail();
  int on = 1, hops = 255, loop = 0;  // RFC 5798 5.1.2.3: Hop Limit 255
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex_, sizeof ifindex_) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on) < 0)
    return fail();
  wait_readable();
  return {};
}

void VrrpSocket6::close() {
  boost::system::error_code ec;
  descriptor_.close(ec);
}

std::error_code VrrpSocket6::send(std::span<const uint8_t> payload) {
  sockaddr_in6 to = vrrp_group_address(ifindex_);
  iovec iov{const_cast<uint8_t*>(payload.data()), payload.size()};
  alignas(cmsghdr) std::array<uint8_t, CMSG_SPACE(sizeof(in6_pktinfo))> control{};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_namelen = sizeof to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo info{};
  std::memcpy(&info.ipi6_addr, link_local_.bytes.data(), 16);  // RFC 5798 5.1.2.1
  info.ipi6_ifindex = static_cast<unsigned>(ifindex_);
  std::memcpy(CMSG_DATA(c), &info, sizeof info);
  if (sendmsg(descriptor_.native_handle(), &msg, 0) < 0) return {errno, std::generic_category()};
  return {};
}

void VrrpSocket6::receive_one(bool& more) {
  sockaddr_in6 from{};
  iovec iov{buffer_.data(), buffer_.size()};
  alignas(cmsghdr) std::array<uint8_t, CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(int))>
      control{};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const ssize_t n = recvmsg(descriptor_.native_handle(), &msg, 0);
  more = n >= 0;
  if (n < 0 || msg.msg_namelen < sizeof from || from.sin6_family != AF_INET6) return;
  Ipv6Envelope envelope;
  envelope.source = from_in6(from.sin6_addr);
  envelope.destination = IpAddress{Family::V4, {}};  // not IPv6 unless IPV6_PKTINFO says
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != IPPROTO_IPV6) continue;
    if (c->cmsg_type == IPV6_HOPLIMIT && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      std::memcpy(&envelope.hop_limit, CMSG_DATA(c), sizeof(int));
    } else if (c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      envelope.destination = from_in6(info.ipi6_addr);
    }
  }
  on_packet_(std::span<const uint8_t>(buffer_.data(), static_cast<size_t>(n)), envelope);
}

void VrrpSocket6::drain_now() {
  bool more = true;  // the socket is non-blocking: recvmsg() says when the queue is empty
  for (int i = 0; i < 1024 && more; ++i) receive_one(more);  // bounded, as VrrpSocket's
}

void VrrpSocket6::wait_readable() {
  descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this](boost::system::error_code ec) {
                           if (ec) return;  // closed
                           bool more = true;
                           for (int i = 0; i < 64 && more; ++i) receive_one(more);  // bounded
                           wait_readable();
                         });
}

std::error_code lookup_link_local(const std::string& ifname, std::span<const IpAddress> exclude,
                                  InterfaceInfo& out) {
  out.ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (out.ifindex == 0) return {errno, std::generic_category()};
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) < 0) return {errno, std::generic_category()};
  std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> guard(list, freeifaddrs);
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6 || ifname != i->ifa_name) continue;
    const IpAddress a = from_in6(reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr);
    if (!a.is_ipv6_link_local()) continue;
    if (std::find(exclude.begin(), exclude.end(), a) != exclude.end()) continue;
    out.primary = a;
    return {};
  }
  return std::make_error_code(std::errc::address_not_available);
}

}  // namespace fwha::vrrp
