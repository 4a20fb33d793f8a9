// ICMP and ICMPv6 echo requests through raw sockets (the kernel adapter of the next-hop
// tracker): one socket per family, opened when first needed; an echo reply carrying our
// identifier is handed to the owner with its source address. Anything else is ignored.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <system_error>

#include "fwha/asio.h"
#include "fwha/ip_address.h"

namespace fwha::track {

class IcmpEcho {
 public:
  using OnAnswer = std::function<void(const IpAddress& from)>;

  IcmpEcho(boost::asio::io_context& io, OnAnswer on_answer);
  ~IcmpEcho();
  IcmpEcho(const IcmpEcho&) = delete;
  IcmpEcho& operator=(const IcmpEcho&) = delete;

  std::error_code send(const IpAddress& to);

 private:
  struct Socket {
    explicit Socket(boost::asio::io_context& io) : descriptor(io) {}
    boost::asio::posix::stream_descriptor descriptor;
  };
  std::error_code open(Family family);
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
