// An in-memory expectation table and a recording transport for ExpectSync tests. The table
// answers ENOENT for an expectation whose master is not in `masters`, like the kernel.
#pragma once

#include "sync/frame_codec.h"

#include <vector>

#include "sync/expect_port.h"
#include "sync/replicator.h"

namespace fwha::test {

class FakeExpectTable : public sync::ExpectWriter, public sync::ExpectReader {
 public:
  std::error_code apply(const sync::ExpectChange& c) override {
    ++applied;
    std::erase_if(entries, [&](const sync::ExpectEntry& e) { return e.tuple == c.entry.tuple; });
    if (c.kind == sync::ExpectChangeKind::Destroy) return {};
    bool master = false;
    for (const FlowTuple& m : masters) master = master || m == c.entry.master;
    if (!master) return std::make_error_code(std::errc::no_such_file_or_directory);
    entries.push_back(c.entry);
    return {};
  }
  std::error_code dump(const std::function<void(const sync::ExpectEntry&)>& visit) override {
    for (const auto& e : entries) visit(e);
    return {};
  }

  std::vector<sync::ExpectEntry> entries;
  std::vector<FlowTuple> masters;
  size_t applied = 0;
};

class RecordingTransport : public sync::FrameTransport {
 public:
  bool connected() const override { return up; }
  bool send(const sync::wire::Frame& f) override {
    if (!up) return false;
    frames.push_back(f);
    return true;
  }
  bool send_encoded(const std::string& bytes) override {
    if (!up) return false;
    sync::FrameDecoder d;
    d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    for (auto r = d.next(); r.status == sync::FrameDecoder::Status::Frame; r = d.next()) {
      frames.push_back(r.frame);
    }
    return true;
  }
  bool up = true;
  std::vector<sync::wire::Frame> frames;
};

}  // namespace fwha::test
