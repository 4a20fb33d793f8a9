// Gratuitous ARP over an AF_PACKET socket. KERNEL-FACTS: a request with sender IP = target IP
// updates existing neighbour entries at once, while an ARP reply to the broadcast MAC may be
// ignored within the neighbour's locktime (1 s) - so we send requests.
#include "vip/gratuitous_arp.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include "fwha/unique_fd.h"

namespace fwha::vip {
namespace {

#pragma pack(push, 1)
struct ArpFrame {
  ether_header eth;
  arphdr arp;
  uint8_t sender_mac[6];
  uint8_t sender_ip[4];
  uint8_t target_mac[6];
  uint8_t target_ip[4];
};
#pragma pack(pop)

}  // namespace

UniqueFd open_arp_socket(std::error_code& ec) {
  UniqueFd s{socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)};
  if (!s) ec = {errno, std::generic_category()};
  return s;
}

std::error_code send_gratuitous_arp(int packet_socket, int ifindex, const IpAddress& address) {
  if (address.family != Family::V4) return std::make_error_code(std::errc::not_supported);
  ifreq ifr{};
  if (!if_indextoname(static_cast<unsigned>(ifindex), ifr.ifr_name)) {
    return {errno, std::generic_category()};
  }
  if (ioctl(packet_socket, SIOCGIFHWADDR, &ifr) < 0) return {errno, std::generic_category()};

  ArpFrame f{};
  std::memset(f.eth.ether_dhost, 0xff, 6);
  std::memcpy(f.eth.ether_shost, ifr.ifr_hwaddr.sa_data, 6);
  f.eth.ether_type = htons(ETHERTYPE_ARP);
  f.arp.ar_hrd = htons(ARPHRD_ETHER);
  f.arp.ar_pro = htons(ETHERTYPE_IP);
  f.arp.ar_hln = 6;
  f.arp.ar_pln = 4;
  f.arp.ar_op = htons(ARPOP_REQUEST);
  std::memcpy(f.sender_mac, ifr.ifr_hwaddr.sa_data, 6);
  std::memcpy(f.sender_ip, address.bytes.data(), 4);
  std::memcpy(f.target_ip, address.bytes.data(), 4);

  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex;
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);
  if (sendto(packet_socket, &f, sizeof f, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    return {errno, std::generic_category()};
  }
  return {};
}

}  // namespace fwha::vip
