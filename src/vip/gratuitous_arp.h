#pragma once

#include <system_error>

#include "fwha/ip_address.h"

namespace fwha::vip {

// Sends one gratuitous ARP for `address` out of `ifindex` (broadcast ARP request with
// sender IP = target IP, sender MAC = the interface's MAC).
std::error_code send_gratuitous_arp(int ifindex, const IpAddress& address);

}  // namespace fwha::vip
