// Defaults the configuration and the sync library share, so they cannot drift apart.
#pragma once

#include <cstdint>

namespace fwha {

// While conntrack events keep coming, the Master sends them this many microseconds apart
// (sync.event_coalesce_us): lag against CPU per entry, docs/performance.md.
inline constexpr uint32_t kDefaultEventCoalesceUs = 300;

}  // namespace fwha
