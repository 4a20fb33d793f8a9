// VRRPv3 advertisement for IPv4 (RFC 5798 section 5), encoded and parsed by pure functions.
// parse_ipv4() takes a whole IPv4 packet as a raw socket delivers it (IP header included) and
// validates everything the RFC asks a receiver to check (section 7.1) before anything else
// sees it. It has a fuzz target (tests/fuzz/fuzz_vrrp_packet.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fwha/ip_address.h"

namespace fwha::vrrp {

inline constexpr uint8_t kIpProtoVrrp = 112;
inline constexpr uint32_t kVrrpMulticastV4 = 0xE0000012;  // 224.0.0.18

struct Advert {
  uint8_t vrid = 0;
  uint8_t priority = 0;
  uint16_t max_adver_interval_cs = 0;  // 12 bits
  std::vector<IpAddress> addresses;    // IPv4 VIPs
};

// What was wrong with a received packet; each has its own counter in the daemon.
enum class ParseError : uint8_t {
  None,
  Truncated,        // shorter than the IP header or than the VRRP header + addresses
  NotIpv4,
  NotVrrp,          // IP protocol is not 112
  BadTtl,           // TTL != 255 (RFC 5798 7.1: MUST discard)
  BadVersion,       // version != 3
  BadType,          // type != 1 (ADVERTISEMENT)
  BadChecksum,
  BadAddressCount,  // Count IPvX Addr does not match the length
};
const char* to_string(ParseError e);

struct ParsedAdvert {
  ParseError error = ParseError::None;
  IpAddress source;       // IP source address (valid when the IP header was readable)
  uint8_t ttl = 0;
  Advert advert;
};

// The VRRP part only (no IP header): version/type, VRID, priority, count, max adver int,
// checksum computed with the IPv4 pseudo-header of src/dst (RFC 5798 5.2.8), addresses.
std::vector<uint8_t> encode_ipv4(const Advert& advert, const IpAddress& src, const IpAddress& dst);

// A whole IPv4 packet (header + VRRP) as received on a raw socket.
ParsedAdvert parse_ipv4(std::span<const uint8_t> packet);

}  // namespace fwha::vrrp
