// One raw IPv6 socket (next header 112) per VRRP interface whose adverts are IPv6 (RFC 5798
// 5.1.2): bound to the device, joined to ff02::12 there, multicast hop limit 255, no loopback
// of our own adverts, sent from the interface's link-local address. The IPv6 sibling of
// VrrpSocket: a raw IPv6 socket never delivers the IPv6 header, so what the parser needs of it
// (source, destination, hop limit) comes from ancillary data and is handed over beside the
// VRRP payload.
#pragma once

#include <array>
#include <functional>
#include <span>
#include <string>
#include <system_error>

#include "fwha/asio.h"
#include "fwha/ip_address.h"
#include "vrrp/vrrp_packet.h"
#include "vrrp/vrrp_socket.h"

namespace fwha::vrrp {

class VrrpSocket6 {
 public:
  using ReceiveHandler =
      std::function<void(std::span<const uint8_t> vrrp, const Ipv6Envelope& envelope)>;

  VrrpSocket6(boost::asio::io_context& io, std::string ifname, int ifindex, IpAddress link_local);
  ~VrrpSocket6();
  VrrpSocket6(const VrrpSocket6&) = delete;
  VrrpSocket6& operator=(const VrrpSocket6&) = delete;

  std::error_code open(ReceiveHandler on_packet);
  std::error_code send(std::span<const uint8_t> vrrp_payload);
  // Hands what is queued in the socket right now to the receive handler, without waiting
  // (as VrrpSocket::drain_now: a Master that stalled looks for the peer's adverts).
  void drain_now();
  void close();

 private:
  void wait_readable();
  void receive_one(bool& more);

  std::string ifname_;
  int ifindex_;
  IpAddress link_local_;
  ReceiveHandler on_packet_;
  boost::asio::posix::stream_descriptor descriptor_;
  // The largest advert: 8 + 16 * 255 bytes, so nothing is ever cut.
  std::array<uint8_t, 4096> buffer_{};
};

// The interface's index and its first IPv6 link-local address (fe80::/10) that is not one of
// `exclude` (the VIPs), as `out.primary`: the source of its adverts and, for the first
// interface, the address the tie-break compares.
std::error_code lookup_link_local(const std::string& ifname, std::span<const IpAddress> exclude,
                                  InterfaceInfo& out);

}  // namespace fwha::vrrp
