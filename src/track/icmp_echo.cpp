#include "track/icmp_echo.h"

#include <arpa/inet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace fwha::track {
namespace {

uint16_t checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

IcmpEcho::IcmpEcho(boost::asio::io_context& io, OnAnswer on_answer)
    : io_(io), on_answer_(std::move(on_answer)),
      identifier_(static_cast<uint16_t>(std::random_device{}())) {}

IcmpEcho::~IcmpEcho() = default;  // the descriptors close their sockets

std::error_code IcmpEcho::open(Family family) {
  const bool v6 = family == Family::V6;
  const int fd = v6 ? ::socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6)
                    : ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return {errno, std::generic_category()};
  auto s = std::make_unique<Socket>(io_);
  s->descriptor.assign(fd);  // owns fd from here on
  if (v6) {  // the kernel fills the ICMPv6 checksum; let only echo replies in
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
    if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0) {
      return {errno, std::generic_category()};
    }
  }
  (v6 ? v6_ : v4_) = std::move(s);
  wait(family);
  return {};
}

std::error_code IcmpEcho::send(const IpAddress& to) {
  const bool v6 = to.family == Family::V6;
  if (!(v6 ? v6_ : v4_)) {
    if (auto ec = open(to.family)) return ec;
  }
  std::array<uint8_t, 16> packet{};
  packet[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  packet[4] = static_cast<uint8_t>(identifier_ >> 8);
  packet[5] = static_cast<uint8_t>(identifier_);
  ++sequence_;
  packet[6] = static_cast<uint8_t>(sequence_ >> 8);
  packet[7] = static_cast<uint8_t>(sequence_);
  std::memcpy(packet.data() + 8, "fwha-nh", 8);  // 7 characters and the NUL
  if (!v6) {
    const uint16_t c = checksum(packet.data(), packet.size());
    packet[2] = static_cast<uint8_t>(c >> 8);
    packet[3] = static_cast<uint8_t>(c);
  }
  ssize_t n;
  if (v6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    std::memcpy(&sa.sin6_addr, to.bytes.data(), 16);
    n = ::sendto(v6_->descriptor.native_handle(), packet.data(), packet.size(), 0,
                 reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    std::memcpy(&sa.sin_addr, to.bytes.data(), 4);
    n = ::sendto(v4_->descriptor.native_handle(), packet.data(), packet.size(), 0,
                 reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  if (n < 0) return {errno, std::generic_category()};
  return {};
}

void IcmpEcho::wait(Family family) {
  Socket& s = family == Family::V6 ? *v6_ : *v4_;
  s.descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this, family](boost::system::error_code ec) {
                            if (ec) return;  // closed
                            read(family);
                            wait(family);
                          });
}

// A raw ICMP socket sees every ICMP message of the namespace: keep echo replies with our
// identifier. IPv4 ones come with their IP header, IPv6 ones without.
void IcmpEcho::read(Family family) {
  const bool v6 = family == Family::V6;
  const int fd = (v6 ? v6_ : v4_)->descriptor.native_handle();
  for (int i = 0; i < 64; ++i) {  // bounded: let the timers run too
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(fd, buffer_.data(), buffer_.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0) return;
    size_t at = 0;
    if (!v6) {
      at = static_cast<size_t>(buffer_[0] & 0x0f) * 4;
    }
    if (static_cast<size_t>(n) < at + 8) continue;
    const uint8_t type = buffer_[at];
    const uint16_t id = static_cast<uint16_t>(buffer_[at + 4] << 8 | buffer_[at + 5]);
    if (type != (v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY) || id != identifier_) continue;
    std::optional<IpAddress> source;
    if (v6 && from.ss_family == AF_INET6) {
      source = IpAddress::from_bytes(
          reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in6*>(&from)->sin6_addr), 16);
    } else if (!v6 && from.ss_family == AF_INET) {
      source = IpAddress::from_bytes(
          reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in*>(&from)->sin_addr), 4);
    }
    if (source) on_answer_(*source);
  }
}

}  // namespace fwha::track
