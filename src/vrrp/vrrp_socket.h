// One raw IP protocol 112 socket per VRRP interface: bound to the device, joined to
// 224.0.0.18 there, multicast TTL 255 (RFC 5798 5.1.1.3), no loopback of our own adverts.
// Received packets come with their IP header so the parser can check TTL and source.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <system_error>

#include "fwha/asio.h"
#include "fwha/ip_address.h"
#include "fwha/unique_fd.h"

namespace fwha::vrrp {

class VrrpSocket {
 public:
  using ReceiveHandler = std::function<void(std::span<const uint8_t> packet)>;

  VrrpSocket(boost::asio::io_context& io, std::string ifname, int ifindex, IpAddress source);
  ~VrrpSocket();
  VrrpSocket(const VrrpSocket&) = delete;
  VrrpSocket& operator=(const VrrpSocket&) = delete;

  std::error_code open(ReceiveHandler on_packet);
  // Adverts leave through `link` (the virtual MAC link over this interface) from now on, still
  // from our primary address; back through the interface itself whenever `link` refuses
  // (down: a Master whose link could not be set up must keep advertising).
  std::error_code send_via(const std::string& link);
  std::error_code send(std::span<const uint8_t> vrrp_payload);
  // Hands what is queued in the socket right now to the receive handler, without waiting.
  void drain_now();
  void close();

 private:
  void wait_readable();

  boost::asio::io_context& io_;
  std::string ifname_;
  int ifindex_;
  IpAddress source_;
  ReceiveHandler on_packet_;
  boost::asio::posix::stream_descriptor descriptor_;
  UniqueFd via_;  // send_via(): send-only, a filter drops whatever reaches it
  std::array<uint8_t, 2048> buffer_{};
};

// The interface's index and its first IPv4 address that is not one of `exclude` (the VIPs).
struct InterfaceInfo {
  int ifindex = 0;
  IpAddress primary;
};
std::error_code lookup_interface(const std::string& ifname, std::span<const IpAddress> exclude,
                                 InterfaceInfo& out);

}  // namespace fwha::vrrp
