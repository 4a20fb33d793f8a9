#include "sync/event_hold.h"

namespace fwha::sync {

bool EventHold::send_now(Clock::time_point now, size_t read, size_t pending) {
  if (read > 0) {  // an arrival: does it follow the one before closely?
    dense_ = last_arrival_ && now - *last_arrival_ < gap_;
    last_arrival_ = now;
  }
  if (pending == 0) {  // filtered, or nothing came: nothing is held
    held_since_.reset();
    return false;
  }
  const bool held_long_enough = held_since_ && now - *held_since_ >= gap_;
  if (!enabled() || !dense_ || pending >= entries_ || held_long_enough) {
    held_since_.reset();
    return true;
  }
  if (!held_since_) held_since_ = now;
  return false;
}

}  // namespace fwha::sync
