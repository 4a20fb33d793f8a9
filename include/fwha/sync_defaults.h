// Defaults the configuration and the sync library share, so they cannot drift apart.
#pragma once

#include <cstdint>

namespace fwha {

// Holding: gaps shorter than this many microseconds make a stream. Window (holding
// off): while conntrack events keep coming, the Master sends them this many microseconds
// apart (sync.event_coalesce_us): lag against CPU per entry, docs/performance.md.
inline constexpr uint32_t kDefaultEventCoalesceUs = 300;

// With 2 or more (sync.event_hold_entries), the Master holds the events of a stream until
// that many are pending instead of draining at window ticks (sync/event_hold.h);
// event_coalesce_us is then the gap below which events make a stream.
inline constexpr uint32_t kDefaultEventHoldEntries = 2;

}  // namespace fwha
