#include "vrrp/vrrp_socket.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vrrp/vrrp_packet.h"

namespace fwha::vrrp {
namespace {

// What an advert needs of the socket it leaves by; false with errno set. The source must be our
// primary address, never a VIP (RFC 5798 5.1.1.1). It is set through IP_MULTICAST_IF's
// imr_address: bind() would also filter what we receive to packets addressed to that unicast
// address, and adverts go to 224.0.0.18. TTL 255 is what receivers check (7.1); no loop,
// or we would read our own adverts.
bool set_advert_sender(int fd, int ifindex, const IpAddress& source) {
  ip_mreqn mif{};
  mif.imr_ifindex = ifindex;
  std::memcpy(&mif.imr_address, source.bytes.data(), 4);
  const int ttl = 255, loop = 0;
  return setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mif, sizeof mif) == 0 &&
         setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) == 0 &&
         setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) == 0;
}

}  // namespace

VrrpSocket::VrrpSocket(boost::asio::io_context& io, std::string ifname, int ifindex,
                       IpAddress source)
    : io_(io), ifname_(std::move(ifname)), ifindex_(ifindex), source_(source), descriptor_(io) {}

VrrpSocket::~VrrpSocket() { close(); }

std::error_code VrrpSocket::open(ReceiveHandler on_packet) {
  on_packet_ = std::move(on_packet);
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, kIpProtoVrrp);
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
  ip_mreqn mreq{};
  mreq.imr_multiaddr.s_addr = htonl(kVrrpMulticastV4);
  mreq.imr_ifindex = ifindex_;
  if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) return fail();
  if (!set_advert_sender(fd, ifindex_, source_)) return fail();
  wait_readable();
  return {};
}

void VrrpSocket::close() {
  boost::system::error_code ec;
  descriptor_.close(ec);
  via_.reset();
}

std::error_code VrrpSocket::send_via(const std::string& link) {
  const int ifindex = static_cast<int>(if_nametoindex(link.c_str()));
  if (ifindex == 0) return {errno, std::generic_category()};
  UniqueFd via{socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, kIpProtoVrrp)};
  if (!via) return {errno, std::generic_category()};
  const int fd = via.get();
  auto fail = []() { return std::error_code{errno, std::generic_category()}; };
  // Receiving is the interface's socket's job: this one accepts nothing, so nothing queues.
  sock_filter drop_all{BPF_RET | BPF_K, 0, 0, 0};
  sock_fprog prog{1, &drop_all};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return fail();
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, link.c_str(),
                 static_cast<socklen_t>(link.size())) < 0)
    return fail();
  if (!set_advert_sender(fd, ifindex, source_)) return fail();
  via_ = std::move(via);
  return {};
}

std::error_code VrrpSocket::send(std::span<const uint8_t> payload) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(kVrrpMulticastV4);
  if (via_ && sendto(via_.get(), payload.data(), payload.size(), 0,
                             reinterpret_cast<sockaddr*>(&to), sizeof to) >= 0) {
    return {};
  }
  if (sendto(descriptor_.native_handle(), payload.data(), payload.size(), 0,
             reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    return {errno, std::generic_category()};
  }
  return {};
}

void VrrpSocket::drain_now() {
  for (int i = 0; i < 1024; ++i) {  // bounded: a socket buffer holds a few thousand adverts
    ssize_t n = recv(descriptor_.native_handle(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    on_packet_(std::span<const uint8_t>(buffer_.data(), static_cast<size_t>(n)));
  }
}

void VrrpSocket::wait_readable() {
  descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this](boost::system::error_code ec) {
                           if (ec) return;  // closed
                           for (int i = 0; i < 64; ++i) {  // bounded: let timers run too
                             ssize_t n = recv(descriptor_.native_handle(), buffer_.data(),
                                              buffer_.size(), 0);
                             if (n <= 0) break;
                             on_packet_(std::span<const uint8_t>(buffer_.data(),
                                                                 static_cast<size_t>(n)));
                           }
                           wait_readable();
                         });
}

std::error_code lookup_interface(const std::string& ifname, std::span<const IpAddress> exclude,
                                 InterfaceInfo& out) {
  out.ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (out.ifindex == 0) return {errno, std::generic_category()};
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) < 0) return {errno, std::generic_category()};
  std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> guard(list, freeifaddrs);
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || ifname != i->ifa_name) continue;
    auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    auto a = IpAddress::from_bytes(reinterpret_cast<const uint8_t*>(&sin->sin_addr), 4);
    if (std::find(exclude.begin(), exclude.end(), *a) != exclude.end()) continue;
    out.primary = *a;
    return {};
  }
  return std::make_error_code(std::errc::address_not_available);
}

}  // namespace fwha::vrrp
