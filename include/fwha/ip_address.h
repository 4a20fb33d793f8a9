// An IPv4 or IPv6 address as plain bytes: the one address type shared by the VRRP code, the
// conntrack adapter and the sync wire format, so no layer leaks in_addr or nf_conntrack types.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fwha {

enum class Family : uint8_t { V4 = 4, V6 = 6 };

struct IpAddress {
  Family family = Family::V4;
  std::array<uint8_t, 16> bytes{};  // V4 uses the first 4 bytes, network order

  static IpAddress v4(uint32_t host_order);
  static std::optional<IpAddress> parse(std::string_view text);
  // From 4 or 16 raw network-order bytes; nullopt for any other length.
  static std::optional<IpAddress> from_bytes(const uint8_t* data, size_t len);

  size_t size() const { return family == Family::V4 ? 4 : 16; }
  // fe80::/10 (RFC 4291 2.5.6); false for IPv4.
  bool is_ipv6_link_local() const {
    return family == Family::V6 && bytes[0] == 0xFE && (bytes[1] & 0xC0) == 0x80;
  }
  uint32_t v4_host_order() const;
  std::string to_string() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

// An address with a prefix length, as a VIP is configured ("192.0.2.1/24").
struct IpPrefix {
  IpAddress address;
  uint8_t length = 32;

  static std::optional<IpPrefix> parse(std::string_view text);
  std::string to_string() const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

}  // namespace fwha
