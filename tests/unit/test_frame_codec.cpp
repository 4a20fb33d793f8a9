// Framing of the sync stream: frames split anywhere are reassembled; a body that does not
// parse is skipped without losing the stream; an impossible length is fatal.
#include <gtest/gtest.h>

#include "sync/frame_codec.h"

namespace fwha::sync {
namespace {

wire::Frame hello(const std::string& node) {
  wire::Frame f;
  f.mutable_hello()->set_protocol_version(kProtocolVersion);
  f.mutable_hello()->set_node(node);
  return f;
}

void feed(FrameDecoder& d, const std::string& bytes) {
  d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(FrameCodec, LengthPrefixIsBigEndian) {
  std::string out;
  append_frame(hello("fw1"), out);
  const size_t body = out.size() - 4;
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0);
  EXPECT_EQ(static_cast<uint8_t>(out[3]), body);
}

TEST(FrameCodec, FramesSplitAtEveryByteAreReassembled) {
  std::string stream;
  for (int i = 0; i < 3; ++i) append_frame(hello("fw" + std::to_string(i)), stream);
  FrameDecoder d;
  std::vector<std::string> nodes;
  for (char c : stream) {
    feed(d, std::string(1, c));
    for (auto r = d.next(); r.status != FrameDecoder::Status::NeedMore; r = d.next()) {
      ASSERT_EQ(r.status, FrameDecoder::Status::Frame);
      nodes.push_back(r.frame.hello().node());
    }
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"fw0", "fw1", "fw2"}));
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(FrameCodec, UnparseableBodyIsSkippedAndStreamContinues) {
  std::string stream = std::string("\0\0\0\x03", 4) + "\xff\xff\xff";  // junk protobuf
  append_frame(hello("fw2"), stream);
  FrameDecoder d;
  feed(d, stream);
  auto bad = d.next();
  EXPECT_EQ(bad.status, FrameDecoder::Status::BadFrame);
  EXPECT_NE(bad.error.find("not a valid protobuf"), std::string::npos);
  auto good = d.next();
  ASSERT_EQ(good.status, FrameDecoder::Status::Frame);
  EXPECT_EQ(good.frame.hello().node(), "fw2");
}

TEST(FrameCodec, OversizedOrZeroLengthIsFatal) {
  for (const std::string& prefix : {std::string("\xff\xff\xff\xff", 4), std::string(4, '\0')}) {
    FrameDecoder d;
    feed(d, prefix + "junk");
    auto r = d.next();
    EXPECT_EQ(r.status, FrameDecoder::Status::Fatal);
    EXPECT_NE(r.error.find("outside 1.."), std::string::npos) << r.error;
    std::string more;
    append_frame(hello("x"), more);
    feed(d, more);  // nothing after a fatal error is trusted
    EXPECT_EQ(d.next().status, FrameDecoder::Status::Fatal);
  }
}

TEST(FrameCodec, TruncatedFrameWaitsForMore) {
  std::string stream;
  append_frame(hello("fw1"), stream);
  FrameDecoder d;
  feed(d, stream.substr(0, stream.size() - 1));
  EXPECT_EQ(d.next().status, FrameDecoder::Status::NeedMore);
  feed(d, stream.substr(stream.size() - 1));
  EXPECT_EQ(d.next().status, FrameDecoder::Status::Frame);
}

TEST(FrameCodec, MaximumSizeFrameIsAccepted) {
  wire::Frame f = hello(std::string(kMaxFrameBytes - 16, 'a'));
  std::string stream;
  append_frame(f, stream);
  ASSERT_LE(stream.size() - 4, kMaxFrameBytes);
  FrameDecoder d;
  feed(d, stream);
  EXPECT_EQ(d.next().status, FrameDecoder::Status::Frame);
}

}  // namespace
}  // namespace fwha::sync
