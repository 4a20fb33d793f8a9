// Pairs up the conntrack events of a dense stream before they go to the peer: the Master's
// alternative to a coalescing window (sync.event_hold_entries, docs/design.md "Event
// batching").
//
// Why: on the lab's guest a wake-up by a timer costs the woken thread ~17-30 us of CPU, and
// one by another thread's write (an event arriving) ~5-10 us (docs/performance.md, "Wake-ups
// by timer and by event"). A window drains at timer ticks, so each frame costs a timer's
// wake-up, and its entries wait up to the window. Holding waits for events only: each
// arrival wakes the pump (cheap), and what was read goes out once `entries` changes are
// pending. At 10k new flows/s (one per ~100 us) a frame then carries two, sent the moment the
// second arrives: half the frames of window 0 (its CPU and bytes), and a wait of one
// inter-arrival gap for the first of each pair, not a window's.
//
// Only while the stream is dense: an event that comes `gap` or more after the one before is
// sent at once, as is anything held for `gap`, so a trickle is not delayed. The last event of
// a dense spell has no successor to wait for; the heartbeat (every 5 ms, SyncService) sends
// it. That bounds a held change to one heartbeat, and costs no timer per pair (a timer armed
// and cancelled per pair cost more than it saved: docs/performance.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

namespace fwha::sync {

class EventHold {
 public:
  using Clock = std::chrono::steady_clock;

  // entries < 2: holding is off, every read is sent at once.
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
  bool dense_ = false;
  std::optional<Clock::time_point> held_since_;
};

}  // namespace fwha::sync
