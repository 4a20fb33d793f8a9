// Tracked next-hops (optional, `group.track_next_hops`): a node whose upstream router stopped
// answering cannot forward for the group even with every link up, which carrier monitoring
// does not see. Each target is probed every interval (ICMP echo, icmp_echo.h); after `misses`
// unanswered probes in a row it is unreachable, and one answer makes it reachable again. The
// node is degraded while any target is unreachable.
//
// What degraded means is the daemon's decision (daemon.cpp): a degraded Master hands the group
// over to its peer on the sync link, and the peer refuses if it is degraded too, so a fault
// upstream of both nodes moves nothing (better a Master with a partial path than none).
//
// Pure: fed probe and answer events, no clock, no sockets.
#pragma once

#include <cstdint>
#include <vector>

#include "fwha/ip_address.h"

namespace fwha::track {

class NextHopTracker {
 public:
  struct Target {
    IpAddress address;
    bool reachable = true;  // until proven otherwise: a start does not hand over at once
    bool outstanding = false;
    uint32_t misses = 0;  // unanswered probes in a row
    uint64_t probes = 0;
    uint64_t answers = 0;
  };

  NextHopTracker(const std::vector<IpAddress>& targets, uint32_t misses_allowed);

  // A probe to target i is about to go out; the one before it, if unanswered, is a miss.
  // Returns true when this changed degraded().
  bool probe_sent(size_t i);
  // An answer from target i (any answer since the last probe counts). True when degraded()
  // changed.
  bool answer_received(size_t i);

  bool degraded() const;
  const std::vector<Target>& targets() const { return targets_; }
  // The index of `address` among the targets, or -1.
  int find(const IpAddress& address) const;

 private:
  std::vector<Target> targets_;
  uint32_t misses_allowed_;
};

}  // namespace fwha::track
