// Echo suppression: what the sink writes into the kernel must not come back out of the
// node's own event socket and be sent to the peer again. In Active/Passive a node is never
// source and sink at once (the Backup does not listen to events), so no echo arises; in
// Active/Active both sides listen while applying the peer's entries, and without this filter
// every replicated entry would bounce between the nodes for ever.
//
// The sink records (key, content hash) of each entry it writes; an event for the same key
// with the same content within `window` is the echo of that write and is dropped. A real
// change (other content) or a later one passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <unordered_map>

#include "fwha/flow.h"
#include "sync/flow_digest.h"

namespace fwha::sync {

class EchoFilter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit EchoFilter(std::chrono::milliseconds window = std::chrono::milliseconds(2000),
                      size_t max_entries = 1 << 20)
      : window_(window), max_entries_(max_entries) {}

  void note_written(const FlowChange& change, Clock::time_point now);
  // True when `change` (read from our own event socket) is the echo of a write of ours.
  bool is_echo(const FlowChange& change, Clock::time_point now);
  size_t size() const { return written_.size(); }

 private:
  struct Written {
    uint64_t content;
    FlowChangeKind kind;
    Clock::time_point at;
  };
  void expire(Clock::time_point now);

  std::chrono::milliseconds window_;
  size_t max_entries_;
  std::unordered_map<FlowKey, Written, FlowKeyHash> written_;
  std::deque<std::pair<Clock::time_point, FlowKey>> order_;
};

}  // namespace fwha::sync
