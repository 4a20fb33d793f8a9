// Framing of the sync-link TCP stream: a 4-byte big-endian length, then one serialized
// wire::Frame. The decoder is a pure, incremental function of the bytes received, so it is
// unit-tested and fuzzed without sockets.
//
// Error policy: a length of 0 or above kMaxFrameBytes means the stream can no longer be
// trusted (we cannot find the next frame boundary): Fatal, the link is closed and re-opened,
// and the Master resyncs. A frame of valid length whose body does not parse is counted and
// skipped (BadFrame): the stream stays usable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fwha_sync.pb.h"

namespace fwha::sync {

inline constexpr uint32_t kProtocolVersion = 2;
inline constexpr size_t kMaxFrameBytes = 4 * 1024 * 1024;
inline constexpr size_t kLengthPrefixBytes = 4;

// Appends the length prefix and the serialized frame to `out`.
void append_frame(const wire::Frame& frame, std::string& out);

class FrameDecoder {
 public:
  enum class Status { NeedMore, Frame, BadFrame, Fatal };
  struct Result {
    Status status = Status::NeedMore;
    wire::Frame frame;  // valid when status == Frame
    std::string error;  // set for BadFrame and Fatal
  };

  void feed(const uint8_t* data, size_t len);
  // Decodes the next frame from what was fed. After Fatal, every call returns Fatal.
  Result next();
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  std::vector<uint8_t> buffer_;
  size_t offset_ = 0;
  bool fatal_ = false;
  std::string fatal_error_;
};

}  // namespace fwha::sync
