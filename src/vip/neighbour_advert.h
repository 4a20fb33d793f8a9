#pragma once

#include <system_error>

#include "fwha/ip_address.h"

namespace fwha::vip {

// Sends one unsolicited Neighbour Advertisement for the IPv6 `address` out of `ifindex`
// (RFC 4861 7.2.6; RFC 5798 6.4.2 for VRRP): to ff02::1, hop limit 255, Override and Router
// flags set, with our link-layer address, so neighbours replace their cached entry at once.
std::error_code send_unsolicited_na(int ifindex, const IpAddress& address);

}  // namespace fwha::vip
