// libFuzzer target: arbitrary bytes on the sync link must never crash the frame decoder or
// the flow validation (build with -Dfuzz=true and CXX=clang++).
#include <cstddef>
#include <cstdint>

#include "sync/expect_wire.h"
#include "sync/flow_wire.h"
#include "sync/frame_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fwha::sync::FrameDecoder decoder;
  // Feed in two pieces so reassembly is exercised too.
  decoder.feed(data, size / 2);
  decoder.feed(data + size / 2, size - size / 2);
  for (int i = 0; i < 1000; ++i) {
    auto r = decoder.next();
    if (r.status == fwha::sync::FrameDecoder::Status::NeedMore ||
        r.status == fwha::sync::FrameDecoder::Status::Fatal)
      break;
    if (r.status != fwha::sync::FrameDecoder::Status::Frame) continue;
    if (r.frame.has_flows()) {
      for (const auto& change : r.frame.flows().changes()) {
        std::string error;
        (void)fwha::sync::from_wire(change, error);
      }
    }
    if (r.frame.has_expect_batch()) {
      for (const auto& change : r.frame.expect_batch().changes()) {
        std::string error;
        (void)fwha::sync::from_wire(change, error);
      }
    }
  }
  return 0;
}
