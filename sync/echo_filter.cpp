#include "sync/echo_filter.h"

namespace fwha::sync {

void EchoFilter::note_written(const FlowChange& change, Clock::time_point now) {
  expire(now);
  const FlowKey k = key_of(change.entry);
  written_[k] = Written{content_hash(change.entry), change.kind, now};
  order_.emplace_back(now, k);
  // Bounded: under a flood the oldest records go first (worst case: one echo gets through,
  // which the peer's sink treats as an idempotent upsert).
  while (written_.size() > max_entries_ && !order_.empty()) {
    written_.erase(order_.front().second);
    order_.pop_front();
  }
}

bool EchoFilter::is_echo(const FlowChange& change, Clock::time_point now) {
  expire(now);
  auto it = written_.find(key_of(change.entry));
  if (it == written_.end()) return false;
  const bool destroy = change.kind == FlowChangeKind::Destroy;
  const bool wrote_destroy = it->second.kind == FlowChangeKind::Destroy;
  if (destroy != wrote_destroy) return false;
  if (!destroy && it->second.content != content_hash(change.entry)) return false;
  written_.erase(it);  // one write, one echo
  return true;
}

void EchoFilter::expire(Clock::time_point now) {
  while (!order_.empty() && now - order_.front().first > window_) {
    auto it = written_.find(order_.front().second);
    if (it != written_.end() && it->second.at == order_.front().first) written_.erase(it);
    order_.pop_front();
  }
}

}  // namespace fwha::sync
