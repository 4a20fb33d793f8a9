// When a node tells its peer its Health (degraded, holds the group's state): on every new
// connection once the peer said Hello, on each change, and again every kRepeat, which keeps
// the promise of our Hello (PeerSilence::kSpeakEvery) when nothing else goes. The election
// reads the peer's `holds_state` (preemption waits for a peer that holds the state), so a
// change must reach the peer within milliseconds, not at the next repeat.
//
// Both roles check when something may have changed: the daemon changes the degraded flag, a
// round makes the node hold the state, the link goes down. A Master also checks at every
// heartbeat (5 ms). A Backup has nothing else to send, so it also checks after each burst of
// frames it reads until it has told this connection (the peer's Hello opens it) and on a
// timer at next_repeat(). Before, the Backup checked on a 5 ms timer too: its idle sync
// thread switched 272-345 times a second, now 207 (the Master's heartbeats: 200). Pure
// (clock passed in): unit-tested; its callers in sync_service.cpp by
// tests/unit/test_sync_service.cpp (two services over the loopback) and in the lab
// (next_hop, rejoin, idle_flow).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "sync/peer_silence.h"

namespace fwha::sync {

struct Health {
  bool degraded = false;
  bool holds_state = false;
  bool operator==(const Health&) const = default;
};

class HealthBeat {
 public:
  using Clock = std::chrono::steady_clock;
  // Half the promise: a check may come late (a busy thread, a timer's slack).
  static constexpr std::chrono::milliseconds kRepeat = PeerSilence::kSpeakEvery / 2;

  // `connection`: the link's count of connections so far (a new one is a new number). The
  // caller checks only once the peer said Hello on it. Returns the Health to send now, if
  // any; the caller sends it.
  std::optional<Health> due(Clock::time_point now, uint64_t connection, Health current);
  // When the next repeat is due if nothing changes (now, before the first send).
  Clock::time_point next_repeat(Clock::time_point now) const;
  // Something was sent on this connection already.
  bool told(uint64_t connection) const { return sent_ && connection_ == connection; }

 private:
  bool sent_ = false;
  Health last_{};
  uint64_t connection_ = 0;
  Clock::time_point sent_at_{};
};

}  // namespace fwha::sync
