// Unsolicited Neighbour Advertisement over a raw ICMPv6 socket. The kernel fills the IPv6
// header (source: the interface's link-local address) and the ICMPv6 checksum.
#include "vip/neighbour_advert.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include "fwha/unique_fd.h"

namespace fwha::vip {
namespace {

#pragma pack(push, 1)
struct NeighbourAdvert {
  nd_neighbor_advert na;
  uint8_t option_type;  // ND_OPT_TARGET_LINKADDR
  uint8_t option_len;   // in units of 8 bytes
  uint8_t mac[6];
};
#pragma pack(pop)

}  // namespace

UniqueFd open_na_socket(std::error_code& ec) {
  UniqueFd s{socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6)};
  if (!s) {
    ec = {errno, std::generic_category()};
    return s;
  }
  int hops = 255;  // RFC 4861 7.1.2: receivers drop NAs with any other hop limit
  icmp6_filter none;
  ICMP6_FILTER_SETBLOCKALL(&none);
  if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(s.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &none, sizeof none) < 0) {
    ec = {errno, std::generic_category()};
    s.reset();
  }
  return s;
}

std::error_code send_unsolicited_na(int icmp6_socket, int ifindex, const IpAddress& address) {
  if (address.family != Family::V6) return std::make_error_code(std::errc::not_supported);
  ifreq ifr{};
  if (!if_indextoname(static_cast<unsigned>(ifindex), ifr.ifr_name)) {
    return {errno, std::generic_category()};
  }
  if (ioctl(icmp6_socket, SIOCGIFHWADDR, &ifr) < 0) return {errno, std::generic_category()};
  if (setsockopt(icmp6_socket, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0) {
    return {errno, std::generic_category()};
  }

  NeighbourAdvert m{};
  m.na.nd_na_type = ND_NEIGHBOR_ADVERT;
  m.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE | ND_NA_FLAG_ROUTER;
  std::memcpy(&m.na.nd_na_target, address.bytes.data(), 16);
  m.option_type = ND_OPT_TARGET_LINKADDR;
  m.option_len = 1;
  std::memcpy(m.mac, ifr.ifr_hwaddr.sa_data, 6);

  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_scope_id = static_cast<uint32_t>(ifindex);
  inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
  if (sendto(icmp6_socket, &m, sizeof m, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    return {errno, std::generic_category()};
  }
  return {};
}

}  // namespace fwha::vip
