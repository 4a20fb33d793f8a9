// PeerSilence (sync/peer_silence.h): when a connection whose peer says nothing is closed. The
// clock is passed in; `frames` stands for the count of complete frames the link received.
#include "sync/peer_silence.h"

#include <gtest/gtest.h>

#include <chrono>

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;
using Clock = PeerSilence::Clock;

struct PeerSilenceTest : ::testing::Test {
  PeerSilence silence;
  Clock::time_point t0 = Clock::time_point(1000s);
  uint64_t frames = 40;  // whatever earlier connections brought
  void SetUp() override { silence.connected(t0, frames); }
};

TEST_F(PeerSilenceTest, APeerThatSpeaksEverySecondIsNeverCut) {
  ++frames;  // its Hello
  for (auto t = 0ms; t <= 120s; t += 100ms) {
    if (t.count() % 1000 == 0) ++frames;  // its Health
    EXPECT_FALSE(silence.check(t0 + t, frames, true, true)) << "at " << t.count() << " ms";
  }
}

TEST_F(PeerSilenceTest, NoHelloWithinTheLimitClosesWhateverThePeerPromised) {
  EXPECT_FALSE(silence.check(t0 + PeerSilence::kLimit - 100ms, frames, false, false));
  const auto why = silence.check(t0 + PeerSilence::kLimit, frames, false, false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("no Hello from the peer within 10 s"), std::string::npos) << *why;
}

TEST_F(PeerSilenceTest, APeerThatPromisedAndFellSilentIsCutOncePerSilence) {
  ++frames;  // Hello
  EXPECT_FALSE(silence.check(t0 + 1s, frames, true, true));
  // Stuck from here on, inside a frame or between two: no complete frame comes.
  EXPECT_FALSE(silence.check(t0 + 1s + PeerSilence::kLimit - 100ms, frames, true, true));
  const auto why = silence.check(t0 + 1s + PeerSilence::kLimit, frames, true, true);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("nothing from the peer for 10 s"), std::string::npos) << *why;
  EXPECT_NE(why->find("every 1000 ms"), std::string::npos) << *why;
  // Once: the next reason needs another whole silence (the close is under way meanwhile).
  EXPECT_FALSE(silence.check(t0 + 1s + PeerSilence::kLimit + 100ms, frames, true, true));
  EXPECT_TRUE(silence.check(t0 + 1s + 2 * PeerSilence::kLimit, frames, true, true));
}

TEST_F(PeerSilenceTest, AFrameRestartsTheCount) {
  ++frames;  // Hello
  EXPECT_FALSE(silence.check(t0 + 9s, frames, true, true));
  EXPECT_FALSE(silence.check(t0 + 18s, frames, true, true)) << "9 s since the Hello";
  ++frames;
  EXPECT_FALSE(silence.check(t0 + 18500ms, frames, true, true));
  EXPECT_FALSE(silence.check(t0 + 28s, frames, true, true)) << "9.5 s since the last frame";
  EXPECT_TRUE(silence.check(t0 + 28500ms, frames, true, true));
}

TEST_F(PeerSilenceTest, AnOlderPeerThatPromisedNothingMayBeSilent) {
  ++frames;  // its Hello, without speaks_every_ms
  for (auto t = 0s; t <= 120s; t += 1s) {
    EXPECT_FALSE(silence.check(t0 + t, frames, true, false)) << "at " << t.count() << " s";
  }
}

TEST_F(PeerSilenceTest, ANewConnectionStartsAfresh) {
  ++frames;
  EXPECT_FALSE(silence.check(t0 + 9s, frames, true, true));
  silence.connected(t0 + 9500ms, frames);  // the old connection's silence is not carried over
  EXPECT_FALSE(silence.check(t0 + 19s, frames, false, false));
  EXPECT_TRUE(silence.check(t0 + 19500ms, frames, false, false));
}

}  // namespace
}  // namespace fwha::sync
