// Interface addresses and gratuitous ARP behind a seam: the VRRP driver moves VIPs through
// this interface; address_netlink.cpp / gratuitous_arp.cpp are the real kernel adapters.
#pragma once

#include <memory>
#include <string>
#include <system_error>

#include "fwha/ip_address.h"

namespace fwha::vip {

class AddressPort {
 public:
  virtual ~AddressPort() = default;
  // Adding an address that is present, or removing one that is absent, is not an error.
  virtual std::error_code add(int ifindex, const IpPrefix& prefix) = 0;
  virtual std::error_code remove(int ifindex, const IpPrefix& prefix) = 0;
  // Gratuitous ARP (IPv4): an ARP request with sender IP = target IP = address, to broadcast,
  // which updates existing neighbour entries at once (RFC 5227 "ARP Announcement").
  // IPv6: an unsolicited Neighbour Advertisement with the Override flag.
  virtual std::error_code announce(int ifindex, const IpAddress& address) = 0;
};

// rtnetlink (libmnl) for addresses, an AF_PACKET socket for ARP.
std::unique_ptr<AddressPort> make_kernel_address_port(std::error_code& ec);

}  // namespace fwha::vip
