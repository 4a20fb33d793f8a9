// libFuzzer target for the VRRPv3 advert parsers (untrusted wire input, RFC 5798 7.1), both
// run on every input:
// - parse_ipv4() on the whole input (an IPv4 packet as a raw socket delivers it);
// - parse_ipv6() on the input past its first 33 bytes, which make the envelope the kernel
//   would report: source (16), destination (16), hop limit (1; 0 stands for "not reported").
// Beyond "no crash, no out-of-bounds read": an accepted packet must be self-consistent, and
// re-encoding it with the same addresses must reproduce the VRRP bytes exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "src/vrrp/vrrp_packet.h"

namespace {

using namespace fwha::vrrp;

// The VRRP bytes re-encoded from what was accepted must equal the received ones, except the
// reserved bits of byte 4 (ignored on receive, zero on send) and the checksum that covers them.
void expect_reencodes(std::span<const uint8_t> received, const std::vector<uint8_t>& encoded) {
  if (encoded.size() != received.size()) std::abort();
  for (size_t i = 0; i < encoded.size(); ++i) {
    uint8_t got = received[i];
    if (i == 4) got &= 0x0F;
    if (i == 6 || i == 7) continue;
    if (got != encoded[i]) std::abort();
  }
}

void fuzz_ipv4(const uint8_t* data, size_t size) {
  const ParsedAdvert p = parse_ipv4(std::span<const uint8_t>(data, size));
  if (p.error != ParseError::None) return;
  if (p.ttl != 255 || p.advert.max_adver_interval_cs > 0x0FFF) std::abort();
  const size_t header_len = static_cast<size_t>(data[0] & 0x0F) * 4;
  const auto dst = fwha::IpAddress::from_bytes(data + 16, 4);
  const auto vrrp = encode_ipv4(p.advert, p.source, *dst);
  if (header_len + vrrp.size() > size) std::abort();
  expect_reencodes({data + header_len, vrrp.size()}, vrrp);
}

void fuzz_ipv6(const uint8_t* data, size_t size) {
  constexpr size_t kEnvelope = 33;
  if (size < kEnvelope) return;
  Ipv6Envelope e;
  e.source = *fwha::IpAddress::from_bytes(data, 16);
  e.destination = *fwha::IpAddress::from_bytes(data + 16, 16);
  e.hop_limit = data[32] == 0 ? -1 : data[32];
  const std::span<const uint8_t> payload(data + kEnvelope, size - kEnvelope);
  const ParsedAdvert p = parse_ipv6(payload, e);
  if (p.error != ParseError::None) return;
  if (p.ttl != 255 || !p.source.is_ipv6_link_local() || p.source != e.source ||
      p.advert.max_adver_interval_cs > 0x0FFF) {
    std::abort();
  }
  for (const auto& a : p.advert.addresses) {
    if (a.family != fwha::Family::V6) std::abort();
  }
  expect_reencodes(payload, encode_ipv6(p.advert, e.source, e.destination));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_ipv4(data, size);
  fuzz_ipv6(data, size);
  return 0;
}
