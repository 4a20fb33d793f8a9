// VRRPv3 advertisement for IPv4 and IPv6 (RFC 5798 section 5, RFC 9568), encoded and parsed
// by pure functions. parse_ipv4() takes a whole IPv4 packet as a raw socket delivers it (IP
// header included); parse_ipv6() takes the VRRP payload and what the kernel tells about the
// IPv6 header in ancillary data, since raw IPv6 sockets never deliver the header. Both
// validate everything the RFC asks a receiver to check (section 7.1) before anything else
// sees it. They have a fuzz target (tests/fuzz/fuzz_vrrp_packet.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fwha/ip_address.h"
#include "fwha/vrrp_numbers.h"

namespace fwha::vrrp {

using fwha::kIpProtoVrrp;
using fwha::kVrrpMulticastV4;
using fwha::kVrrpMulticastV6;
IpAddress vrrp_multicast_v6();

struct Advert {
  uint8_t vrid = 0;
  uint8_t priority = 0;
  uint16_t max_adver_interval_cs = 0;  // 12 bits
  std::vector<IpAddress> addresses;    // the VIPs of the advert's family
};

// What was wrong with a received packet; each has its own counter in the daemon.
enum class ParseError : uint8_t {
  None,
  Truncated,        // shorter than the IP header or than the VRRP header + addresses
  NotIpv4,
  NotVrrp,          // IP protocol is not 112
  BadTtl,           // TTL or IPv6 Hop Limit != 255 (RFC 5798 7.1: MUST discard)
  BadVersion,       // version != 3
  BadType,          // type != 1 (ADVERTISEMENT)
  BadChecksum,
  BadAddressCount,  // Count IPvX Addr does not match the length
  NotIpv6,          // an envelope address handed to parse_ipv6() is not IPv6
  SourceNotLinkLocal,  // IPv6 source outside fe80::/10 (RFC 5798 5.1.2.1)
};
const char* to_string(ParseError e);

struct ParsedAdvert {
  ParseError error = ParseError::None;
  IpAddress source;       // IP source address (valid when the IP header was readable)
  uint8_t ttl = 0;        // IPv4 TTL or IPv6 Hop Limit
  Advert advert;
};

// The VRRP part only (no IP header): version/type, VRID, priority, count, max adver int,
// checksum computed with the IPv4 pseudo-header of src/dst (RFC 5798 5.2.8), addresses.
std::vector<uint8_t> encode_ipv4(const Advert& advert, const IpAddress& src, const IpAddress& dst);

// A whole IPv4 packet (header + VRRP) as received on a raw socket.
ParsedAdvert parse_ipv4(std::span<const uint8_t> packet);

// The VRRP part only, with the checksum over the IPv6 pseudo-header of src/dst (RFC 5798
// 5.2.8, RFC 8200 8.1); lists the IPv6 addresses of `advert` (others are skipped), at most
// 255. We compute it ourselves rather than asking the kernel (IPV6_CHECKSUM): the kernel
// would then also drop bad packets on receive before the parser could count them.
std::vector<uint8_t> encode_ipv6(const Advert& advert, const IpAddress& src, const IpAddress& dst);

// What a raw IPv6 socket tells about the header of a received packet, from recvmsg():
// msg_name (source), IPV6_PKTINFO (destination) and IPV6_HOPLIMIT (-1: the kernel did not
// say, which is rejected like a wrong hop limit).
struct Ipv6Envelope {
  IpAddress source;
  IpAddress destination;
  int hop_limit = -1;
};

// The VRRP payload of an IPv6 packet (no IPv6 header) and its envelope. Checks, in order:
// hop limit 255, source link-local, then as parse_ipv4: version, type, length against
// Count IPvX Addr (16 bytes each), checksum with the envelope's addresses.
ParsedAdvert parse_ipv6(std::span<const uint8_t> vrrp, const Ipv6Envelope& envelope);

}  // namespace fwha::vrrp
