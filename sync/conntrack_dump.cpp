// The default ConntrackReader::open_dump(): a snapshot handed out in parts.
#include <algorithm>

#include "sync/conntrack_port.h"

namespace fwha::sync {

namespace {

class SnapshotDump final : public ConntrackDump {
 public:
  static constexpr size_t kPart = 256;  // about what one netlink datagram carries

  explicit SnapshotDump(std::vector<FlowEntry> entries) : entries_(std::move(entries)) {}

  bool next(std::vector<FlowEntry>& out, std::error_code& ec) override {
    ec.clear();
    const size_t end = std::min(entries_.size(), at_ + kPart);
    out.insert(out.end(), entries_.begin() + static_cast<std::ptrdiff_t>(at_),
               entries_.begin() + static_cast<std::ptrdiff_t>(end));
    at_ = end;
    return at_ < entries_.size();
  }

 private:
  std::vector<FlowEntry> entries_;
  size_t at_ = 0;
};

}  // namespace

std::unique_ptr<ConntrackDump> ConntrackReader::open_dump(std::error_code& ec) {
  std::vector<FlowEntry> entries;
  ec = dump([&entries](const FlowEntry& e) { entries.push_back(e); });
  if (ec) return nullptr;
  return std::make_unique<SnapshotDump>(std::move(entries));
}

}  // namespace fwha::sync
