#pragma once

#include <system_error>

#include "fwha/ip_address.h"
#include "fwha/unique_fd.h"

namespace fwha::vip {

// A raw ICMPv6 socket to send Neighbour Advertisements through, opened once (as for ARP,
// gratuitous_arp.h), hop limit 255, receiving nothing (ICMP6_FILTER blocks every type).
UniqueFd open_na_socket(std::error_code& ec);

// Sends one unsolicited Neighbour Advertisement for the IPv6 `address` out of `ifindex`
// through `icmp6_socket` (RFC 4861 7.2.6; RFC 5798 6.4.2 for VRRP): to ff02::1, hop limit
// 255, Override and Router flags set, with our link-layer address, so neighbours replace
// their cached entry at once.
std::error_code send_unsolicited_na(int icmp6_socket, int ifindex, const IpAddress& address);

}  // namespace fwha::vip
