#include "sync/event_hold.h"

#include <algorithm>

namespace fwha::sync {

bool EventHold::send_now(Clock::time_point now, size_t read, size_t pending) {
  if (read > 0) {  // an arrival: does it follow the one before closely?
    const bool short_gap = last_arrival_ && now - *last_arrival_ < gap_;
    short_gaps_ = short_gap ? std::min(short_gaps_ + 1, kStreak) : 0;
    last_arrival_ = now;
  }
  if (pending == 0) {  // filtered, or nothing came: nothing is held
    held_since_.reset();
    return false;
  }
  const bool stream = short_gaps_ >= kStreak;
  const bool held_long_enough = held_since_ && now - *held_since_ >= gap_;
  if (!enabled() || !stream || pending >= entries_ || held_long_enough) {
    held_since_.reset();
    return true;
  }
  if (!held_since_) held_since_ = now;
  return false;
}

}  // namespace fwha::sync
