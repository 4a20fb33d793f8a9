#include "track/next_hop_tracker.h"

#include <algorithm>

namespace fwha::track {

NextHopTracker::NextHopTracker(const std::vector<IpAddress>& targets, uint32_t misses_allowed)
    : misses_allowed_(std::max<uint32_t>(1, misses_allowed)) {
  for (const auto& a : targets) targets_.push_back(Target{a});
}

bool NextHopTracker::probe_sent(size_t i) {
  if (i >= targets_.size()) return false;
  const bool before = degraded();
  Target& t = targets_[i];
  if (t.outstanding && ++t.misses >= misses_allowed_) t.reachable = false;
  t.outstanding = true;
  ++t.probes;
  return degraded() != before;
}

bool NextHopTracker::answer_received(size_t i) {
  if (i >= targets_.size()) return false;
  const bool before = degraded();
  Target& t = targets_[i];
  t.outstanding = false;
  t.misses = 0;
  t.reachable = true;
  ++t.answers;
  return degraded() != before;
}

bool NextHopTracker::degraded() const {
  return std::any_of(targets_.begin(), targets_.end(),
                     [](const Target& t) { return !t.reachable; });
}

int NextHopTracker::find(const IpAddress& address) const {
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i].address == address) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace fwha::track
