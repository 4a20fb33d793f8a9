#include "track/icmp_echo.h"

#include <arpa/inet.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "util/inet_checksum.h"

namespace fwha::track {
std::array<uint8_t, 16> echo_request(Family family, uint16_t identifier, uint16_t sequence) {
  const bool v6 = family == Family::V6;
  std::array<uint8_t, 16> packet{};
  packet[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  packet[4] = static_cast<uint8_t>(identifier >> 8);
  packet[5] = static_cast<uint8_t>(identifier);
  packet[6] = static_cast<uint8_t>(sequence >> 8);
  packet[7] = static_cast<uint8_t>(sequence);
  std::memcpy(packet.data() + 8, "fwha-nh", 8);  // 7 characters and the NUL
  if (!v6) {
    const uint16_t c = inet::fold_complement(inet::sum16(packet));
    packet[2] = static_cast<uint8_t>(c >> 8);
    packet[3] = static_cast<uint8_t>(c);
  }
  return packet;
}

bool is_our_echo_reply(std::span<const uint8_t> packet, Family family, uint16_t identifier) {
  size_t at = 0;
  if (family == Family::V4) {
    if (packet.empty()) return false;
    at = static_cast<size_t>(packet[0] & 0x0f) * 4;
    if (at < 20) return false;
  }
  if (packet.size() < at + 8) return false;
  const uint8_t echo_reply = family == Family::V6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY;
  const auto id = static_cast<uint16_t>(packet[at + 4] << 8 | packet[at + 5]);
  return packet[at] == echo_reply && packet[at + 1] == 0 && id == identifier;
}

IcmpEcho::IcmpEcho(boost::asio::io_context& io, OnAnswer on_answer)
    : io_(io), on_answer_(std::move(on_answer)),
      identifier_(static_cast<uint16_t>(std::random_device{}())) {}

IcmpEcho::~IcmpEcho() = default;  // the descriptors close their sockets

std::error_code IcmpEcho::open(const std::vector<IpAddress>& targets) {
  for (const auto& t : targets) {
    if (!(t.family == Family::V6 ? v6_ : v4_)) {
      if (auto ec = open_family(t.family)) return ec;
    }
  }
  return {};
}

std::error_code IcmpEcho::open_family(Family family) {
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
  } else {  // a set bit drops that type: all but echo replies
    icmp_filter filter{~(1U << ICMP_ECHOREPLY)};
    if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter) < 0) {
      return {errno, std::generic_category()};
    }
  }
  (v6 ? v6_ : v4_) = std::move(s);
  wait(family);
  return {};
}

std::error_code IcmpEcho::send(const IpAddress& to) {
  const bool v6 = to.family == Family::V6;
  if (!(v6 ? v6_ : v4_)) return std::make_error_code(std::errc::not_connected);  // not opened
  const auto packet = echo_request(to.family, identifier_, ++sequence_);
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
    if (!is_our_echo_reply({buffer_.data(), static_cast<size_t>(n)}, family, identifier_)) {
      continue;
    }
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
