// libFuzzer target for the VRRPv3 IPv4 advert parser (untrusted wire input, RFC 5798 7.1).
// Beyond "no crash, no out-of-bounds read": an accepted packet must be self-consistent, and
// re-encoding it with the same addresses must reproduce the VRRP bytes exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "src/vrrp/vrrp_packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fwha::vrrp;
  const ParsedAdvert p = parse_ipv4(std::span<const uint8_t>(data, size));
  if (p.error != ParseError::None) return 0;

  // Accepted: TTL 255, and the VRRP part re-encodes to the same bytes (reserved bits aside).
  if (p.ttl != 255 || p.advert.max_adver_interval_cs > 0x0FFF) std::abort();
  const size_t header_len = static_cast<size_t>(data[0] & 0x0F) * 4;
  const auto dst = fwha::IpAddress::from_bytes(data + 16, 4);
  const auto vrrp = encode_ipv4(p.advert, p.source, *dst);
  if (header_len + vrrp.size() > size) std::abort();
  for (size_t i = 0; i < vrrp.size(); ++i) {
    uint8_t got = data[header_len + i];
    if (i == 4) got &= 0x0F;         // reserved bits are ignored on receive, zero on send
    if (i == 6 || i == 7) continue;  // checksum changes with the reserved bits
    if (got != vrrp[i]) std::abort();
  }
  return 0;
}
