#include "sync/frame_codec.h"

#include <cstring>

namespace fwha::sync {

void append_frame(const wire::Frame& frame, std::string& out) {
  const size_t len = frame.ByteSizeLong();
  const uint8_t prefix[kLengthPrefixBytes] = {
      static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
      static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  out.append(reinterpret_cast<const char*>(prefix), kLengthPrefixBytes);
  const size_t at = out.size();
  out.resize(at + len);
  frame.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + at));
}

void FrameDecoder::feed(const uint8_t* data, size_t len) {
  if (fatal_) return;
  // Compact lazily so a long-lived stream does not grow the buffer without bound.
  if (offset_ > 0 && offset_ >= buffer_.size() / 2) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    offset_ = 0;
  }
  buffer_.insert(buffer_.end(), data, data + len);
}

FrameDecoder::Result FrameDecoder::next() {
  Result r;
  if (fatal_) {
    r.status = Status::Fatal;
    r.error = fatal_error_;
    return r;
  }
  if (buffered() < kLengthPrefixBytes) return r;
  const uint8_t* p = buffer_.data() + offset_;
  const uint32_t len = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) |
                       uint32_t{p[3]};
  if (len == 0 || len > kMaxFrameBytes) {
    fatal_ = true;
    fatal_error_ = "frame length " + std::to_string(len) + " outside 1.." +
                   std::to_string(kMaxFrameBytes) + " bytes";
    buffer_.clear();
    offset_ = 0;
    r.status = Status::Fatal;
    r.error = fatal_error_;
    return r;
  }
  if (buffered() < kLengthPrefixBytes + len) return r;
  const uint8_t* body = p + kLengthPrefixBytes;
  offset_ += kLengthPrefixBytes + len;
  if (!r.frame.ParseFromArray(body, static_cast<int>(len))) {
    r.status = Status::BadFrame;
    r.error = "frame of " + std::to_string(len) + " bytes is not a valid protobuf Frame";
    return r;
  }
  r.status = Status::Frame;
  return r;
}

}  // namespace fwha::sync
