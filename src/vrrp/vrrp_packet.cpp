// VRRPv3 advertisement codec for IPv4 and IPv6, RFC 5798 section 5 (as updated by RFC 9568).
//
// Design:
// - Pure functions over byte spans; no sockets, no allocation beyond the result.
// - The parsers are fed untrusted bytes (and fuzzed): every read is preceded by a length check
//   against the span, and the IPv4 VRRP part is bounded by the IP Total Length, never the
//   buffer. IPv6 has no header here: the payload is what the kernel delivered.
// - Checks follow RFC 5798 7.1 in order: TTL / Hop Limit, version (and type, 5.2.2),
//   completeness (Count IPvX Addr against the length), checksum (5.2.8). IPv6 adds the
//   link-local source of 5.1.2.1 right after the hop limit. VRID, source and interval checks
//   need configuration and are the caller's job.
// - Source and TTL are filled as soon as they are known (IPv4: the header is readable), so a
//   dropped packet can still be logged and counted with its sender.
// - One checksum for both families: the IPv4 pseudo-header (5.2.8) and the IPv6 one (RFC 8200
//   8.1: 32-bit length, 24 zero bits, next header) add up to the same 16-bit words when the
//   length is below 65536, which a VRRP message always is (at most 8 + 16 * 255 bytes).
#include "src/vrrp/vrrp_packet.h"

#include <algorithm>

#include "util/inet_checksum.h"

namespace fwha::vrrp {
namespace {

constexpr size_t kIpv4MinHeader = 20;
constexpr size_t kVrrpHeader = 8;
constexpr size_t kIpv4AddrLen = 4;
constexpr size_t kIpv6AddrLen = 16;
constexpr uint8_t kVrrpVersion = 3;
constexpr uint8_t kTypeAdvertisement = 1;
constexpr uint8_t kRequiredTtl = 255;
constexpr size_t kMaxAddresses = 255;  // Count IPvX Addr is 8 bits

uint16_t read16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

using inet::sum16;

// RFC 5798 5.2.8: the checksum covers the VRRP message plus the pseudo-header of the IP
// version (IPv4: source, destination, zero, protocol 112, VRRP length; IPv6, RFC 8200 8.1:
// source, destination, 32-bit length, zeros, next header 112). `addr_len` is 4 or 16. Returns
// the folded, complemented value: 0 when `vrrp` already carries a correct checksum.
uint16_t vrrp_checksum(std::span<const uint8_t> vrrp, const uint8_t* src, const uint8_t* dst,
                       size_t addr_len) {
  uint32_t acc = 0;
  acc = sum16({src, addr_len}, acc);
  acc = sum16({dst, addr_len}, acc);
  acc += kIpProtoVrrp;
  acc += static_cast<uint32_t>(vrrp.size());  // <= 8 + 16 * 255, fits 16 bits
  acc = sum16(vrrp, acc);
  return inet::fold_complement(acc);
}

// Validates the VRRP part (IPv4: bounded by IP Total Length) and fills out.advert.
ParseError parse_vrrp(std::span<const uint8_t> vrrp, const uint8_t* src, const uint8_t* dst,
                      size_t addr_len, Advert& advert) {
  if (vrrp.size() < kVrrpHeader) return ParseError::Truncated;
  if (vrrp[0] >> 4 != kVrrpVersion) return ParseError::BadVersion;
  if ((vrrp[0] & 0x0F) != kTypeAdvertisement) return ParseError::BadType;
  const size_t count = vrrp[3];
  // RFC 5798 7.1: the packet must contain exactly the fixed fields and Count addresses.
  if (vrrp.size() != kVrrpHeader + addr_len * count) return ParseError::BadAddressCount;
  if (vrrp_checksum(vrrp, src, dst, addr_len) != 0) return ParseError::BadChecksum;

  advert.vrid = vrrp[1];
  advert.priority = vrrp[2];
  advert.max_adver_interval_cs = read16(&vrrp[4]) & 0x0FFF;  // 4 reserved bits ignored (5.2.6)
  advert.addresses.clear();
  advert.addresses.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    advert.addresses.push_back(*IpAddress::from_bytes(&vrrp[kVrrpHeader + addr_len * i], addr_len));
  }
  return ParseError::None;
}

// Both families: header fields, then the addresses of `family` (at most 255: Count IPvX Addr
// is 8 bits), then the checksum.
std::vector<uint8_t> encode(const Advert& advert, const IpAddress& src, const IpAddress& dst,
                            Family family) {
  const size_t addr_len = family == Family::V4 ? kIpv4AddrLen : kIpv6AddrLen;
  std::vector<uint8_t> out(kVrrpHeader);
  out[0] = kVrrpVersion << 4 | kTypeAdvertisement;
  out[1] = advert.vrid;
  out[2] = advert.priority;
  const uint16_t interval = advert.max_adver_interval_cs & 0x0FFF;  // reserved bits zero
  out[4] = static_cast<uint8_t>(interval >> 8);
  out[5] = static_cast<uint8_t>(interval & 0xFF);
  size_t count = 0;
  for (const IpAddress& a : advert.addresses) {
    if (a.family != family || count == kMaxAddresses) continue;
    out.insert(out.end(), a.bytes.begin(), a.bytes.begin() + static_cast<std::ptrdiff_t>(addr_len));
    ++count;
  }
  out[3] = static_cast<uint8_t>(count);
  const uint16_t sum = vrrp_checksum(out, src.bytes.data(), dst.bytes.data(), addr_len);
  out[6] = static_cast<uint8_t>(sum >> 8);
  out[7] = static_cast<uint8_t>(sum & 0xFF);
  return out;
}

}  // namespace

const char* to_string(ParseError e) {
  switch (e) {
    case ParseError::None:
      return "none";
    case ParseError::Truncated:
      return "truncated";
    case ParseError::NotIpv4:
      return "not_ipv4";
    case ParseError::NotVrrp:
      return "not_vrrp";
    case ParseError::BadTtl:
      return "bad_ttl";
    case ParseError::BadVersion:
      return "bad_version";
    case ParseError::BadType:
      return "bad_type";
    case ParseError::BadChecksum:
      return "bad_checksum";
    case ParseError::BadAddressCount:
      return "bad_address_count";
    case ParseError::NotIpv6:
      return "not_ipv6";
    case ParseError::SourceNotLinkLocal:
      return "source_not_link_local";
  }
  return "unknown";
}

IpAddress vrrp_multicast_v6() {
  return *IpAddress::from_bytes(kVrrpMulticastV6.data(), kVrrpMulticastV6.size());
}

// Only IPv4 addresses are encoded: this is the IPv4 advert.
std::vector<uint8_t> encode_ipv4(const Advert& advert, const IpAddress& src, const IpAddress& dst) {
  return encode(advert, src, dst, Family::V4);
}

// Only IPv6 addresses are encoded: this is the IPv6 advert.
std::vector<uint8_t> encode_ipv6(const Advert& advert, const IpAddress& src, const IpAddress& dst) {
  return encode(advert, src, dst, Family::V6);
}

ParsedAdvert parse_ipv4(std::span<const uint8_t> packet) {
  ParsedAdvert r;
  auto fail = [&r](ParseError e) {
    r.error = e;
    return r;
  };
  if (packet.size() < kIpv4MinHeader) return fail(ParseError::Truncated);
  if (packet[0] >> 4 != 4) return fail(ParseError::NotIpv4);
  r.ttl = packet[8];
  r.source = *IpAddress::from_bytes(&packet[12], kIpv4AddrLen);

  const size_t header_len = static_cast<size_t>(packet[0] & 0x0F) * 4;
  if (header_len < kIpv4MinHeader) return fail(ParseError::NotIpv4);
  const size_t total_len = read16(&packet[2]);
  if (header_len > packet.size() || total_len > packet.size() || total_len < header_len) {
    return fail(ParseError::Truncated);
  }
  if (packet[9] != kIpProtoVrrp) return fail(ParseError::NotVrrp);
  // RFC 5798 7.1: MUST verify that the IPv4 TTL is 255 (proves a link-local sender).
  if (r.ttl != kRequiredTtl) return fail(ParseError::BadTtl);

  const auto vrrp = packet.subspan(header_len, total_len - header_len);
  r.error = parse_vrrp(vrrp, &packet[12], &packet[16], kIpv4AddrLen, r.advert);
  return r;
}

ParsedAdvert parse_ipv6(std::span<const uint8_t> vrrp, const Ipv6Envelope& envelope) {
  ParsedAdvert r;
  r.source = envelope.source;
  auto fail = [&r](ParseError e) {
    r.error = e;
    return r;
  };
  if (envelope.source.family != Family::V6 || envelope.destination.family != Family::V6) {
    return fail(ParseError::NotIpv6);
  }
  const bool hop_limit_known = envelope.hop_limit >= 0 && envelope.hop_limit <= 255;
  r.ttl = hop_limit_known ? static_cast<uint8_t>(envelope.hop_limit) : 0;
  // RFC 5798 5.1.2.3 / 7.1: MUST discard a packet whose Hop Limit is not 255 (it proves the
  // sender is on the link); unknown counts as wrong.
  if (!hop_limit_known || envelope.hop_limit != kRequiredTtl) return fail(ParseError::BadTtl);
  // RFC 5798 5.1.2.1: the source is the sender's link-local address; the tie-break and the
  // configured peer_address (config.cpp insists on fe80::/10) both rely on it.
  if (!envelope.source.is_ipv6_link_local()) return fail(ParseError::SourceNotLinkLocal);
  r.error = parse_vrrp(vrrp, envelope.source.bytes.data(), envelope.destination.bytes.data(),
                       kIpv6AddrLen, r.advert);
  return r;
}

}  // namespace fwha::vrrp
