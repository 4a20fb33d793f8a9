// VRRP's numbers from RFC 5798 that more than the election needs: the replication skips VRRP's
// conntrack entries, and the conntrack exemption (nft/own_traffic.h) matches adverts by them.
#pragma once

#include <array>
#include <cstdint>

namespace fwha {

inline constexpr uint8_t kIpProtoVrrp = 112;                // IPv4 protocol, IPv6 next header
inline constexpr uint32_t kVrrpMulticastV4 = 0xE0000012;  // 224.0.0.18 (5.1.1.2), host order
// ff02::12 (RFC 5798 5.1.2.2).
inline constexpr std::array<uint8_t, 16> kVrrpMulticastV6 = {0xFF, 0x02, 0, 0, 0, 0, 0, 0,
                                                             0,    0,    0, 0, 0, 0, 0, 0x12};

}  // namespace fwha
