// Unit tests for the VRRPv3 advert codec, IPv4 and IPv6 (RFC 5798 section 5, receive checks
// of 7.1).
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "src/vrrp/vrrp_packet.h"

namespace fwha::vrrp {
namespace {

using Bytes = std::vector<uint8_t>;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

const IpAddress kSrc = ip("192.0.2.2");
const IpAddress kDst = IpAddress::v4(kVrrpMulticastV4);

// Written independently of the codec: a plain RFC 1071 sum over the pseudo-header + message.
uint16_t reference_checksum(const Bytes& vrrp, const IpAddress& src, const IpAddress& dst) {
  Bytes all;
  all.insert(all.end(), src.bytes.begin(), src.bytes.begin() + 4);
  all.insert(all.end(), dst.bytes.begin(), dst.bytes.begin() + 4);
  all.push_back(0);
  all.push_back(112);
  all.push_back(static_cast<uint8_t>(vrrp.size() >> 8));
  all.push_back(static_cast<uint8_t>(vrrp.size()));
  all.insert(all.end(), vrrp.begin(), vrrp.end());
  all[12 + 6] = all[12 + 7] = 0;  // the checksum field itself counts as zero
  if (all.size() % 2) all.push_back(0);
  uint32_t sum = 0;
  for (size_t i = 0; i < all.size(); i += 2) sum += (all[i] << 8) + all[i + 1];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void fix_checksum(Bytes& vrrp, const IpAddress& src = kSrc, const IpAddress& dst = kDst) {
  const uint16_t c = reference_checksum(vrrp, src, dst);
  vrrp[6] = static_cast<uint8_t>(c >> 8);
  vrrp[7] = static_cast<uint8_t>(c);
}

struct IpOpts {
  uint8_t ttl = 255;
  uint8_t protocol = 112;
  uint8_t version = 4;
  size_t options = 0;  // bytes of IP options (multiple of 4)
};

// A whole IPv4 packet around `vrrp`, as a raw socket delivers it.
Bytes ip_packet(const Bytes& vrrp, IpOpts o = {}, const IpAddress& src = kSrc,
                const IpAddress& dst = kDst) {
  const size_t header = 20 + o.options;
  Bytes p(header, 0);
  p[0] = static_cast<uint8_t>(o.version << 4 | header / 4);
  const size_t total = header + vrrp.size();
  p[2] = static_cast<uint8_t>(total >> 8);
  p[3] = static_cast<uint8_t>(total);
  p[8] = o.ttl;
  p[9] = o.protocol;
  std::copy(src.bytes.begin(), src.bytes.begin() + 4, p.begin() + 12);
  std::copy(dst.bytes.begin(), dst.bytes.begin() + 4, p.begin() + 16);
  for (size_t i = 20; i < header; ++i) p[i] = 1;  // NOP options
  p.insert(p.end(), vrrp.begin(), vrrp.end());
  return p;
}

Advert sample_advert() { return Advert{51, 100, 100, {ip("192.0.2.1")}}; }

// Parses from an exactly sized heap copy, so a sanitizer sees any read past the end.
ParsedAdvert parse(const Bytes& b) {
  auto copy = std::make_unique<uint8_t[]>(b.size());
  std::copy(b.begin(), b.end(), copy.get());
  return parse_ipv4(std::span<const uint8_t>(copy.get(), b.size()));
}

TEST(VrrpPacket, KnownVector) {
  // VRID 51, priority 100, interval 100 cs, one address 192.0.2.1; 192.0.2.2 -> 224.0.0.18.
  // By hand: C000+0202 + E000+0012 + 0070 + 000C (pseudo-header)
  //        + 3133 + 6401 + 0064 + 0000 + C000 + 0201 (message) = 0x2FA29
  //   -> fold FA29 + 2 = FA2B -> complement 05D4.
  const Bytes expected = {0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x05, 0xD4, 0xC0, 0x00, 0x02, 0x01};
  const Bytes encoded = encode_ipv4(sample_advert(), kSrc, kDst);
  EXPECT_EQ(encoded, expected);
  EXPECT_EQ(reference_checksum(encoded, kSrc, kDst), 0x05D4);

  const ParsedAdvert p = parse(ip_packet(expected));
  ASSERT_EQ(p.error, ParseError::None) << to_string(p.error);
  EXPECT_EQ(p.advert.vrid, 51);
  EXPECT_EQ(p.advert.priority, 100);
  EXPECT_EQ(p.advert.max_adver_interval_cs, 100);
  EXPECT_EQ(p.advert.addresses, std::vector<IpAddress>{ip("192.0.2.1")});
}

TEST(VrrpPacket, RoundTrip) {
  const Advert a{7, 254, 4095, {ip("198.51.100.7"), ip("203.0.113.255"), ip("10.0.0.1")}};
  const IpAddress src = ip("10.1.2.3");
  const Bytes vrrp = encode_ipv4(a, src, kDst);
  EXPECT_EQ(vrrp.size(), 8u + 4 * 3);
  EXPECT_EQ(reference_checksum(vrrp, src, kDst), vrrp[6] << 8 | vrrp[7]);
  const ParsedAdvert p = parse(ip_packet(vrrp, {}, src));
  ASSERT_EQ(p.error, ParseError::None) << to_string(p.error);
  EXPECT_EQ(p.source, src);
  EXPECT_EQ(p.ttl, 255);
  EXPECT_EQ(p.advert.vrid, a.vrid);
  EXPECT_EQ(p.advert.priority, a.priority);
  EXPECT_EQ(p.advert.max_adver_interval_cs, a.max_adver_interval_cs);
  EXPECT_EQ(p.advert.addresses, a.addresses);
}

TEST(VrrpPacket, EncodeMasksIntervalSkipsNonIpv4AndCapsCount) {
  Advert a = sample_advert();
  a.max_adver_interval_cs = 0xF123;  // the top 4 bits are reserved
  a.addresses.push_back(*IpAddress::parse("2001:db8::1"));
  const Bytes v = encode_ipv4(a, kSrc, kDst);
  EXPECT_EQ(v[4], 0x01);
  EXPECT_EQ(v[5], 0x23);
  EXPECT_EQ(v[3], 1);
  EXPECT_EQ(v.size(), 12u);

  a.addresses.assign(300, ip("192.0.2.9"));
  const Bytes big = encode_ipv4(a, kSrc, kDst);
  EXPECT_EQ(big[3], 255);
  EXPECT_EQ(big.size(), 8u + 4 * 255);
  EXPECT_EQ(parse(ip_packet(big)).error, ParseError::None);
}

TEST(VrrpPacket, ZeroAddressesAccepted) {
  Advert a = sample_advert();
  a.addresses.clear();
  const ParsedAdvert p = parse(ip_packet(encode_ipv4(a, kSrc, kDst)));
  EXPECT_EQ(p.error, ParseError::None);
  EXPECT_TRUE(p.advert.addresses.empty());
}

TEST(VrrpPacket, EveryTruncationIsAnErrorNeverACrash) {
  const Bytes full = ip_packet(encode_ipv4(sample_advert(), kSrc, kDst));
  ASSERT_EQ(parse(full).error, ParseError::None);
  for (size_t len = 0; len < full.size(); ++len) {
    const ParsedAdvert p = parse(Bytes(full.begin(), full.begin() + static_cast<long>(len)));
    EXPECT_EQ(p.error, ParseError::Truncated) << "prefix length " << len;
  }
}

TEST(VrrpPacket, BadTtlStillReportsSource) {
  const ParsedAdvert p = parse(ip_packet(encode_ipv4(sample_advert(), kSrc, kDst), {.ttl = 64}));
  EXPECT_EQ(p.error, ParseError::BadTtl);
  EXPECT_EQ(p.source, kSrc);
  EXPECT_EQ(p.ttl, 64);
}

TEST(VrrpPacket, IpHeaderErrors) {
  const Bytes vrrp = encode_ipv4(sample_advert(), kSrc, kDst);
  EXPECT_EQ(parse(ip_packet(vrrp, {.protocol = 17})).error, ParseError::NotVrrp);
  EXPECT_EQ(parse(ip_packet(vrrp, {.version = 6})).error, ParseError::NotIpv4);

  Bytes ihl4 = ip_packet(vrrp);
  ihl4[0] = 0x44;  // IHL below the 20-byte minimum
  EXPECT_EQ(parse(ihl4).error, ParseError::NotIpv4);

  Bytes ihl15 = ip_packet(vrrp);
  ihl15[0] = 0x4F;  // 60-byte header in a 32-byte packet
  EXPECT_EQ(parse(ihl15).error, ParseError::Truncated);

  Bytes long_total = ip_packet(vrrp);
  long_total[3] += 1;  // Total Length beyond the received bytes
  EXPECT_EQ(parse(long_total).error, ParseError::Truncated);

  Bytes short_total = ip_packet(vrrp);
  short_total[2] = 0;
  short_total[3] = 19;  // Total Length shorter than the header
  EXPECT_EQ(parse(short_total).error, ParseError::Truncated);
}

TEST(VrrpPacket, IpOptionsAndTrailingBytesAreHandled) {
  const Bytes vrrp = encode_ipv4(sample_advert(), kSrc, kDst);
  const ParsedAdvert with_options = parse(ip_packet(vrrp, {.options = 8}));
  EXPECT_EQ(with_options.error, ParseError::None);
  EXPECT_EQ(with_options.advert.vrid, 51);

  Bytes trailing = ip_packet(vrrp);
  trailing.insert(trailing.end(), {0xDE, 0xAD});  // beyond Total Length: not VRRP
  EXPECT_EQ(parse(trailing).error, ParseError::None);
}

TEST(VrrpPacket, VrrpHeaderErrors) {
  const Bytes good = encode_ipv4(sample_advert(), kSrc, kDst);

  Bytes v2 = good;
  v2[0] = 0x21;
  fix_checksum(v2);
  EXPECT_EQ(parse(ip_packet(v2)).error, ParseError::BadVersion);

  Bytes type2 = good;
  type2[0] = 0x32;
  fix_checksum(type2);
  EXPECT_EQ(parse(ip_packet(type2)).error, ParseError::BadType);

  Bytes short_vrrp(good.begin(), good.begin() + 7);  // consistent IP length, 7-byte VRRP
  EXPECT_EQ(parse(ip_packet(short_vrrp)).error, ParseError::Truncated);
}

TEST(VrrpPacket, ChecksumErrors) {
  const Bytes good = encode_ipv4(sample_advert(), kSrc, kDst);
  for (size_t i : {6u, 7u, 2u, 11u}) {  // checksum bytes, priority, an address byte
    Bytes bad = good;
    bad[i] ^= 0x01;
    EXPECT_EQ(parse(ip_packet(bad)).error, ParseError::BadChecksum) << "byte " << i;
  }
  // The pseudo-header counts: the same message from another source or to another
  // destination fails.
  EXPECT_EQ(parse(ip_packet(good, {}, ip("192.0.2.3"))).error, ParseError::BadChecksum);
  EXPECT_EQ(parse(ip_packet(good, {}, kSrc, ip("224.0.0.19"))).error, ParseError::BadChecksum);
}

TEST(VrrpPacket, AddressCountMismatch) {
  const Bytes good = encode_ipv4(sample_advert(), kSrc, kDst);
  for (uint8_t count : {0, 2, 255}) {
    Bytes bad = good;
    bad[3] = count;
    fix_checksum(bad);
    EXPECT_EQ(parse(ip_packet(bad)).error, ParseError::BadAddressCount) << int{count};
  }
  Bytes extra = good;  // one address plus two stray bytes
  extra.insert(extra.end(), {0, 0});
  fix_checksum(extra);
  EXPECT_EQ(parse(ip_packet(extra)).error, ParseError::BadAddressCount);
}

TEST(VrrpPacket, ReservedIntervalBitsIgnoredOnReceive) {
  Bytes v = encode_ipv4(sample_advert(), kSrc, kDst);
  v[4] |= 0xF0;  // RFC 5798 5.2.6: reserved, ignored on reception
  fix_checksum(v);
  const ParsedAdvert p = parse(ip_packet(v));
  ASSERT_EQ(p.error, ParseError::None);
  EXPECT_EQ(p.advert.max_adver_interval_cs, 100);
}

TEST(VrrpPacket, ErrorNames) {
  EXPECT_STREQ(to_string(ParseError::None), "none");
  EXPECT_STREQ(to_string(ParseError::Truncated), "truncated");
  EXPECT_STREQ(to_string(ParseError::NotIpv4), "not_ipv4");
  EXPECT_STREQ(to_string(ParseError::NotVrrp), "not_vrrp");
  EXPECT_STREQ(to_string(ParseError::BadTtl), "bad_ttl");
  EXPECT_STREQ(to_string(ParseError::BadVersion), "bad_version");
  EXPECT_STREQ(to_string(ParseError::BadType), "bad_type");
  EXPECT_STREQ(to_string(ParseError::BadChecksum), "bad_checksum");
  EXPECT_STREQ(to_string(ParseError::BadAddressCount), "bad_address_count");
  EXPECT_STREQ(to_string(ParseError::NotIpv6), "not_ipv6");
  EXPECT_STREQ(to_string(ParseError::SourceNotLinkLocal), "source_not_link_local");
}

// --- IPv6 ------------------------------------------------------------------------------------

const IpAddress kSrc6 = ip("fe80::2");
const IpAddress kDst6 = ip("ff02::12");

// Independent of the codec: RFC 8200 8.1's pseudo-header laid out byte by byte (source,
// destination, 32-bit upper-layer length, 3 zero bytes, next header 112) + the message.
uint16_t reference_checksum6(const Bytes& vrrp, const IpAddress& src, const IpAddress& dst) {
  Bytes all(src.bytes.begin(), src.bytes.end());
  all.insert(all.end(), dst.bytes.begin(), dst.bytes.end());
  const uint32_t len = static_cast<uint32_t>(vrrp.size());
  for (int shift : {24, 16, 8, 0}) all.push_back(static_cast<uint8_t>(len >> shift));
  all.insert(all.end(), {0, 0, 0, 112});
  const size_t at = all.size();
  all.insert(all.end(), vrrp.begin(), vrrp.end());
  all[at + 6] = all[at + 7] = 0;
  if (all.size() % 2) all.push_back(0);
  uint32_t sum = 0;
  for (size_t i = 0; i < all.size(); i += 2) sum += (all[i] << 8) + all[i + 1];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void fix_checksum6(Bytes& vrrp, const IpAddress& src = kSrc6, const IpAddress& dst = kDst6) {
  const uint16_t c = reference_checksum6(vrrp, src, dst);
  vrrp[6] = static_cast<uint8_t>(c >> 8);
  vrrp[7] = static_cast<uint8_t>(c);
}

Ipv6Envelope envelope(const IpAddress& src = kSrc6, int hop_limit = 255,
                      const IpAddress& dst = kDst6) {
  return Ipv6Envelope{src, dst, hop_limit};
}

// As parse() above: an exactly sized heap copy.
ParsedAdvert parse6(const Bytes& b, const Ipv6Envelope& e = envelope()) {
  auto copy = std::make_unique<uint8_t[]>(b.size());
  std::copy(b.begin(), b.end(), copy.get());
  return parse_ipv6(std::span<const uint8_t>(copy.get(), b.size()), e);
}

Advert sample_advert6() { return Advert{51, 100, 100, {ip("fd00:1::1")}}; }

TEST(VrrpPacket6, KnownVectorCapturedFromKeepalived) {
  // keepalived 2.2.7 (vrrp_version 3, native_ipv6, VRID 51, priority 100, advert_int 1,
  // VIP fd00:1::1/64) on a veth whose only link-local address was fe80::2, captured with
  // tcpdump on the other end: fe80::2 -> ff02::12, hop limit 255, next header 112, payload:
  const Bytes captured = {0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x6F, 0x44, 0xFD, 0x00, 0x00, 0x01,
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
  // The checksum by hand: FE80+0002 + FF02+0012 (addresses) + 0018 (length) + 0070 (next
  // header) + 3133 + 6401 + 0064 + 0000 + FD00 + 0001 + 0001 (message) = 0x390B8
  //   -> fold 90B8 + 3 = 90BB -> complement 6F44, as keepalived sent it.
  EXPECT_EQ(reference_checksum6(captured, kSrc6, kDst6), 0x6F44);
  EXPECT_EQ(encode_ipv6(sample_advert6(), kSrc6, kDst6), captured);

  const ParsedAdvert p = parse6(captured);
  ASSERT_EQ(p.error, ParseError::None) << to_string(p.error);
  EXPECT_EQ(p.source, kSrc6);
  EXPECT_EQ(p.ttl, 255);
  EXPECT_EQ(p.advert.vrid, 51);
  EXPECT_EQ(p.advert.priority, 100);
  EXPECT_EQ(p.advert.max_adver_interval_cs, 100);
  EXPECT_EQ(p.advert.addresses, std::vector<IpAddress>{ip("fd00:1::1")});
}

TEST(VrrpPacket6, MulticastGroupAndLinkLocal) {
  EXPECT_EQ(vrrp_multicast_v6(), kDst6);
  EXPECT_TRUE(ip("fe80::1").is_ipv6_link_local());
  EXPECT_TRUE(ip("febf:ffff::1").is_ipv6_link_local());  // fe80::/10 ends at febf:...
  EXPECT_FALSE(ip("fec0::1").is_ipv6_link_local());
  EXPECT_FALSE(ip("fd00:1::2").is_ipv6_link_local());
  EXPECT_FALSE(ip("ff02::12").is_ipv6_link_local());
  EXPECT_FALSE(ip("192.0.2.2").is_ipv6_link_local());
}

TEST(VrrpPacket6, RoundTripSkipsIpv4AndCapsCount) {
  const IpAddress src = ip("fe80::a8c1:abff:fe12:3456");
  Advert a{7, 254, 4095, {ip("fd00:1::1"), ip("192.0.2.1"), ip("2001:db8::ffff")}};
  const Bytes vrrp = encode_ipv6(a, src, kDst6);
  EXPECT_EQ(vrrp.size(), 8u + 16 * 2);
  EXPECT_EQ(vrrp[3], 2);
  EXPECT_EQ(reference_checksum6(vrrp, src, kDst6), vrrp[6] << 8 | vrrp[7]);
  const ParsedAdvert p = parse6(vrrp, envelope(src));
  ASSERT_EQ(p.error, ParseError::None) << to_string(p.error);
  EXPECT_EQ(p.source, src);
  EXPECT_EQ(p.advert.vrid, 7);
  EXPECT_EQ(p.advert.priority, 254);
  EXPECT_EQ(p.advert.max_adver_interval_cs, 4095);
  EXPECT_EQ(p.advert.addresses, (std::vector<IpAddress>{ip("fd00:1::1"), ip("2001:db8::ffff")}));

  a.addresses.assign(300, ip("fd00:1::9"));
  const Bytes big = encode_ipv6(a, kSrc6, kDst6);
  EXPECT_EQ(big[3], 255);
  EXPECT_EQ(big.size(), 8u + 16 * 255);
  EXPECT_EQ(parse6(big).error, ParseError::None);

  a.addresses.clear();  // an interface with IPv4 VIPs only: no addresses, still valid
  EXPECT_EQ(parse6(encode_ipv6(a, kSrc6, kDst6)).error, ParseError::None);
}

TEST(VrrpPacket6, HopLimitMustBe255AndBeKnown) {
  const Bytes good = encode_ipv6(sample_advert6(), kSrc6, kDst6);
  for (int hops : {64, 254, 0, -1, 256, 1000}) {
    const ParsedAdvert p = parse6(good, envelope(kSrc6, hops));
    EXPECT_EQ(p.error, ParseError::BadTtl) << "hop limit " << hops;
    EXPECT_EQ(p.source, kSrc6);  // still reported, for the log line
    EXPECT_EQ(p.ttl, hops >= 0 && hops <= 255 ? hops : 0);
  }
}

TEST(VrrpPacket6, SourceMustBeLinkLocal) {
  // A correct checksum for a global source: only the link-local rule rejects it.
  const IpAddress global = ip("fd00:1::3");
  const ParsedAdvert p = parse6(encode_ipv6(sample_advert6(), global, kDst6), envelope(global));
  EXPECT_EQ(p.error, ParseError::SourceNotLinkLocal);
  EXPECT_EQ(p.source, global);
  // The hop limit is checked first (RFC 5798 7.1 order), then the source.
  EXPECT_EQ(parse6(encode_ipv6(sample_advert6(), global, kDst6), envelope(global, 64)).error,
            ParseError::BadTtl);
}

TEST(VrrpPacket6, EnvelopeMustBeIpv6) {
  const Bytes good = encode_ipv6(sample_advert6(), kSrc6, kDst6);
  EXPECT_EQ(parse6(good, envelope(ip("192.0.2.2"))).error, ParseError::NotIpv6);
  EXPECT_EQ(parse6(good, envelope(kSrc6, 255, ip("224.0.0.18"))).error, ParseError::NotIpv6);
}

TEST(VrrpPacket6, EveryTruncationIsAnErrorNeverACrash) {
  const Bytes full = encode_ipv6(sample_advert6(), kSrc6, kDst6);
  for (size_t len = 0; len < full.size(); ++len) {
    const ParsedAdvert p = parse6(Bytes(full.begin(), full.begin() + static_cast<long>(len)));
    // Shorter than the fixed fields: truncated; longer: the address does not fit its count.
    EXPECT_EQ(p.error, len < 8 ? ParseError::Truncated : ParseError::BadAddressCount)
        << "length " << len;
  }
}

TEST(VrrpPacket6, HeaderErrors) {
  const Bytes good = encode_ipv6(sample_advert6(), kSrc6, kDst6);
  Bytes v2 = good;
  v2[0] = 0x21;
  fix_checksum6(v2);
  EXPECT_EQ(parse6(v2).error, ParseError::BadVersion);
  Bytes type2 = good;
  type2[0] = 0x32;
  fix_checksum6(type2);
  EXPECT_EQ(parse6(type2).error, ParseError::BadType);
}

TEST(VrrpPacket6, ChecksumErrors) {
  const Bytes good = encode_ipv6(sample_advert6(), kSrc6, kDst6);
  for (size_t i : {6u, 7u, 2u, 23u}) {  // checksum bytes, priority, the address's last byte
    Bytes bad = good;
    bad[i] ^= 0x01;
    EXPECT_EQ(parse6(bad).error, ParseError::BadChecksum) << "byte " << i;
  }
  // The pseudo-header counts: the same message from another source or to another group fails.
  EXPECT_EQ(parse6(good, envelope(ip("fe80::3"))).error, ParseError::BadChecksum);
  EXPECT_EQ(parse6(good, envelope(kSrc6, 255, ip("ff02::1"))).error, ParseError::BadChecksum);
  // And the IPv4 checksum of the same fields is not the IPv6 one.
  Bytes v4sum = good;
  const Bytes as_v4 = encode_ipv4(Advert{51, 100, 100, {}}, ip("192.0.2.2"), kDst);
  v4sum[6] = as_v4[6];
  v4sum[7] = as_v4[7];
  EXPECT_EQ(parse6(v4sum).error, ParseError::BadChecksum);
}

TEST(VrrpPacket6, AddressCountCountsSixteenBytesEach) {
  const Bytes good = encode_ipv6(sample_advert6(), kSrc6, kDst6);
  for (uint8_t count : {0, 2, 4, 255}) {  // 4: 16 bytes read as four IPv4 addresses
    Bytes bad = good;
    bad[3] = count;
    fix_checksum6(bad);
    EXPECT_EQ(parse6(bad).error, ParseError::BadAddressCount) << int{count};
  }
  // An IPv4-sized address in an IPv6 advert.
  Bytes v4addr(good.begin(), good.begin() + 8);
  v4addr.insert(v4addr.end(), {192, 0, 2, 1});
  fix_checksum6(v4addr);
  EXPECT_EQ(parse6(v4addr).error, ParseError::BadAddressCount);
}

}  // namespace
}  // namespace fwha::vrrp
