// Pairs up the conntrack events of a sustained stream before they go to the peer: the
// Master's alternative to a coalescing window (sync.event_hold_entries, docs/design.md
// "Holding").
//
// Why: on the lab's guest a wake-up by a timer costs the woken thread ~17-21 us of CPU, and
// one by another thread's write (an event arriving) ~4-10 us (docs/performance.md, "Wake-ups
// by timer and by event"). A window drains at timer ticks, so each frame costs a timer's
// wake-up, and its entries wait up to the window. Holding waits for events only: each
// arrival wakes the pump (cheap), and what was read goes out once `entries` changes are
// pending. At 10k new flows/s (one per ~100 us) a frame then carries two, sent the moment the
// second arrives: half the frames of window 0 (its CPU and bytes), and a wait of one
// inter-arrival gap for the first of each pair, not a window's.
//
// Only in a sustained stream: events count as one once kStreak gaps in a row were shorter
// than `gap`. Until then every read goes at once, so a flow's own few events (a UDP request
// and its answer, a handshake) and a trickle are not delayed. A change held for `gap` goes
// with the next read. The last event of a stream has no successor to wait for; the heartbeat
// (every 5 ms, SyncService) sends it. That bounds a held change to one heartbeat, and costs
// no timer per pair (a timer armed and cancelled per pair cost more than holding saved:
// docs/performance.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

namespace fwha::sync {

class EventHold {
 public:
  using Clock = std::chrono::steady_clock;
  // Short gaps in a row before events count as a stream.
  static constexpr unsigned kStreak = 4;

  // entries < 2: holding is off, every read is sent at once. gap 0: nothing is a stream.
  EventHold(size_t entries, std::chrono::microseconds gap) : entries_(entries), gap_(gap) {}

  bool enabled() const { return entries_ >= 2; }

  // After a read at `now` that brought `read` events and left `pending` changes unsent:
  // true when they are to be sent now, false while they are held.
  bool send_now(Clock::time_point now, size_t read, size_t pending);

  // Changes are held (the heartbeat sends them: `sent()` then).
  bool holding() const { return held_since_.has_value(); }
  void sent() { held_since_.reset(); }

 private:
  size_t entries_;
  std::chrono::microseconds gap_;
  std::optional<Clock::time_point> last_arrival_;
  unsigned short_gaps_ = 0;  // in a row, up to kStreak
  std::optional<Clock::time_point> held_since_;
};

}  // namespace fwha::sync
