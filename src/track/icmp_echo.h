// ICMP and ICMPv6 echo requests through raw sockets (the kernel adapter of the next-hop
// tracker): one socket per family the targets need; an echo reply carrying our identifier is
// handed to the owner with its source address. The kernel filters out every other ICMP type
// (ICMP_FILTER, ICMP6_FILTER): the sockets live on the election thread's loop.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

#include "fwha/asio.h"
#include "fwha/ip_address.h"

namespace fwha::track {

// The echo request we send (16 bytes: header and "fwha-nh"); the IPv4 checksum is filled, the
// ICMPv6 one left to the kernel (it needs the pseudo-header).
std::array<uint8_t, 16> echo_request(Family family, uint16_t identifier, uint16_t sequence);
// Whether `packet`, as a raw socket of that family reads it (IPv4 with its IP header, IPv6
// without), is an echo reply carrying `identifier`.
bool is_our_echo_reply(std::span<const uint8_t> packet, Family family, uint16_t identifier);

class IcmpEcho {
 public:
  using OnAnswer = std::function<void(const IpAddress& from)>;

  IcmpEcho(boost::asio::io_context& io, OnAnswer on_answer);
  ~IcmpEcho();
  IcmpEcho(const IcmpEcho&) = delete;
  IcmpEcho& operator=(const IcmpEcho&) = delete;

  // Opens the sockets the targets' families need, at start: a node that cannot probe must
  // say so then, not look like its routers died.
  std::error_code open(const std::vector<IpAddress>& targets);
  std::error_code send(const IpAddress& to);

 private:
  struct Socket {
    explicit Socket(boost::asio::io_context& io) : descriptor(io) {}
    boost::asio::posix::stream_descriptor descriptor;
  };
  std::error_code open_family(Family family);
  void wait(Family family);
  void read(Family family);

  boost::asio::io_context& io_;
  OnAnswer on_answer_;
  uint16_t identifier_;
  uint16_t sequence_ = 0;
  std::unique_ptr<Socket> v4_, v6_;
  std::array<uint8_t, 1500> buffer_{};
};

}  // namespace fwha::track
