#include "fwha/ip_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace fwha {

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress a;
  a.family = Family::V4;
  uint32_t n = htonl(host_order);
  std::memcpy(a.bytes.data(), &n, 4);
  return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::V4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::V6;
    return a;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::from_bytes(const uint8_t* data, size_t len) {
  if (len != 4 && len != 16) return std::nullopt;
  IpAddress a;
  a.family = len == 4 ? Family::V4 : Family::V6;
  std::memcpy(a.bytes.data(), data, len);
  return a;
}

uint32_t IpAddress::v4_host_order() const {
  uint32_t n;
  std::memcpy(&n, bytes.data(), 4);
  return ntohl(n);
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  IpPrefix p{*addr, static_cast<uint8_t>(addr->family == Family::V4 ? 32 : 128)};
  if (slash == std::string_view::npos) return p;
  auto len_text = text.substr(slash + 1);
  unsigned len = 0;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc{} || end != len_text.data() + len_text.size() || len_text.empty() ||
      len > (addr->family == Family::V4 ? 32u : 128u))
    return std::nullopt;
  p.length = static_cast<uint8_t>(len);
  return p;
}

std::string IpPrefix::to_string() const {
  return address.to_string() + "/" + std::to_string(length);
}

}  // namespace fwha
