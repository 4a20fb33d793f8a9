// Probes the tracked next-hops every interval (IcmpEcho) and keeps their verdict
// (NextHopTracker); after each round tells the owner whether this node is degraded.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "fwha/asio.h"
#include "fwha/ip_address.h"
#include "track/icmp_echo.h"
#include "track/next_hop_tracker.h"

namespace fwha::track {

class NextHopMonitor {
 public:
  // After every round: degraded now, and whether that changed in this round.
  using OnRound = std::function<void(bool degraded, bool changed)>;

  NextHopMonitor(boost::asio::io_context& io, const std::vector<IpAddress>& targets,
                 std::chrono::milliseconds interval, uint32_t misses, OnRound on_round);

  // Opens the probe sockets (an error here means this node cannot track: fwhad stops).
  std::error_code open();
  void start();  // the first round now, then every interval
  bool degraded() const { return tracker_.degraded(); }
  const NextHopTracker& tracker() const { return tracker_; }
  // The unreachable targets, for messages ("198.51.100.254, 2001:db8::1").
  std::string unreachable() const;

 private:
  void round();
  void on_answer(const IpAddress& from);

  NextHopTracker tracker_;
  IcmpEcho echo_;
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  OnRound on_round_;
  bool changed_since_round_ = false;  // an answer between rounds changed the verdict
  std::vector<bool> send_failed_;     // said once per target until a send works again
};

}  // namespace fwha::track
