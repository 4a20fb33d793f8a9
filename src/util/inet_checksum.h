// The Internet checksum (RFC 1071), shared by the VRRP adverts and the ICMP echo requests.
#pragma once

#include <cstdint>
#include <span>

namespace fwha::inet {

// One's complement sum of 16-bit big-endian words; an odd last byte is padded with zero.
inline uint32_t sum16(std::span<const uint8_t> data, uint32_t acc = 0) {
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) acc += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (i < data.size()) acc += static_cast<uint32_t>(data[i]) << 8;
  return acc;
}

// Folds the carries and complements: the value for the checksum field, or 0 when the data
// summed already carried a correct checksum.
inline uint16_t fold_complement(uint32_t acc) {
  while (acc > 0xFFFF) acc = (acc & 0xFFFF) + (acc >> 16);
  return static_cast<uint16_t>(~acc & 0xFFFF);
}

}  // namespace fwha::inet
