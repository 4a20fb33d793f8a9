// An in-memory conntrack table for unit tests: upsert/delete like the kernel adapter, dump in
// insertion-independent order, optional injected failure. As in the kernel, writing over an
// existing entry keeps its NAT binding (reply tuple) unless the change replaces the copy.
#pragma once

#include <unordered_map>

#include "sync/conntrack_port.h"
#include "sync/flow_digest.h"

namespace fwha::test {

class FakeTable : public sync::ConntrackWriter, public sync::ConntrackReader {
 public:
  std::error_code apply(const FlowChange& c) override {
    ++applied;
    if (fail_next) {
      fail_next = false;
      return std::make_error_code(std::errc::invalid_argument);
    }
    const auto k = sync::key_of(c.entry);
    switch (c.kind) {
      case FlowChangeKind::New:
      case FlowChangeKind::Update: {
        auto it = entries.find(k);
        if (it == entries.end() || c.replaces_copy) {
          entries[k] = c.entry;
        } else {
          const FlowTuple binding = it->second.reply;
          it->second = c.entry;
          it->second.reply = binding;
        }
        break;
      }
      case FlowChangeKind::Destroy: entries.erase(k); break;
    }
    log.push_back(c);
    return {};
  }
  std::error_code dump(const std::function<void(const FlowEntry&)>& visit) override {
    ++dumps;
    if (dumps == fail_dump_number) return std::make_error_code(std::errc::interrupted);
    for (const auto& [k, e] : entries) visit(e);
    return {};
  }
  std::optional<uint64_t> count() override {
    if (!count_known) return std::nullopt;
    return entries.size();
  }
  void put(const FlowEntry& e) { entries[sync::key_of(e)] = e; }
  bool has(const FlowEntry& e) const { return entries.count(sync::key_of(e)) > 0; }
  // Equal as replication sees it (timeouts aside).
  bool same_as(const FakeTable& other) const {
    if (entries.size() != other.entries.size()) return false;
    for (const auto& [k, e] : entries) {
      auto it = other.entries.find(k);
      if (it == other.entries.end() || sync::content_hash(it->second) != sync::content_hash(e))
        return false;
    }
    return true;
  }

  std::unordered_map<sync::FlowKey, FlowEntry, sync::FlowKeyHash> entries;
  std::vector<FlowChange> log;
  size_t applied = 0;
  size_t dumps = 0;
  size_t fail_dump_number = 0;  // this dump (1-based) fails
  bool fail_next = false;
  bool count_known = true;
};

}  // namespace fwha::test
