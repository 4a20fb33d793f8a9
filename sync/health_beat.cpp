#include "sync/health_beat.h"

namespace fwha::sync {

std::optional<Health> HealthBeat::due(Clock::time_point now, uint64_t connection,
                                      Health current) {
  if (sent_ && connection_ == connection && last_ == current && now - sent_at_ < kRepeat) {
    return std::nullopt;
  }
  sent_ = true;
  last_ = current;
  connection_ = connection;
  sent_at_ = now;
  return current;
}

HealthBeat::Clock::time_point HealthBeat::next_repeat(Clock::time_point now) const {
  return sent_ ? sent_at_ + kRepeat : now;
}

}  // namespace fwha::sync
