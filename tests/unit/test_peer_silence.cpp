// PeerSilence (sync/peer_silence.h): when a connection whose peer says nothing is closed. The
// clock is passed in; `frames` stands for the count of complete frames the link received.
#include "sync/peer_silence.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;
using Clock = PeerSilence::Clock;
constexpr std::chrono::milliseconds kSecond{1000};  // what fwhad's Hello promises
constexpr std::chrono::milliseconds kNone{0};       // an older peer's Hello
const std::function<bool()> kNoBytes = [] { return false; };  // nothing unread in our socket

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
    EXPECT_FALSE(silence.check(t0 + t, frames, kNoBytes, true, kSecond))
        << "at " << t.count() << " ms";
  }
}

TEST_F(PeerSilenceTest, NoHelloWithinTheLimitClosesWhateverThePeerPromised) {
  for (const auto promise : {kNone, kSecond}) {
    silence.connected(t0, frames);
    EXPECT_FALSE(silence.check(t0 + PeerSilence::kLimit - 100ms, frames, kNoBytes, false, promise));
    const auto why = silence.check(t0 + PeerSilence::kLimit, frames, kNoBytes, false, promise);
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("no Hello from the peer within 10 s"), std::string::npos) << *why;
  }
}

TEST_F(PeerSilenceTest, APeerThatPromisedAndFellSilentIsCutOncePerSilence) {
  ++frames;  // Hello
  EXPECT_FALSE(silence.check(t0 + 1s, frames, kNoBytes, true, kSecond));
  // Stuck from here on, inside a frame or between two: no complete frame comes.
  const auto t1 = t0 + 1s;
  EXPECT_FALSE(silence.check(t1 + PeerSilence::kLimit - 100ms, frames, kNoBytes, true, kSecond));
  const auto why = silence.check(t1 + PeerSilence::kLimit, frames, kNoBytes, true, kSecond);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("nothing from the peer for 10 s"), std::string::npos) << *why;
  EXPECT_NE(why->find("every 1000 ms"), std::string::npos) << *why;
  // Once: the next reason needs another whole silence (the close is under way meanwhile).
  EXPECT_FALSE(silence.check(t1 + PeerSilence::kLimit + 100ms, frames, kNoBytes, true, kSecond));
  EXPECT_TRUE(silence.check(t1 + 2 * PeerSilence::kLimit, frames, kNoBytes, true, kSecond));
}

TEST_F(PeerSilenceTest, AFrameRestartsTheCount) {
  ++frames;  // Hello
  EXPECT_FALSE(silence.check(t0 + 9s, frames, kNoBytes, true, kSecond));
  EXPECT_FALSE(silence.check(t0 + 18s, frames, kNoBytes, true, kSecond)) << "9 s since the Hello";
  ++frames;
  EXPECT_FALSE(silence.check(t0 + 18500ms, frames, kNoBytes, true, kSecond));
  EXPECT_FALSE(silence.check(t0 + 28s, frames, kNoBytes, true, kSecond))
      << "9.5 s since the last frame";
  EXPECT_TRUE(silence.check(t0 + 28500ms, frames, kNoBytes, true, kSecond));
}

TEST_F(PeerSilenceTest, AnOlderPeerThatPromisedNothingMayBeSilent) {
  ++frames;  // its Hello, without speaks_every_ms
  for (auto t = 0s; t <= 120s; t += 1s) {
    EXPECT_FALSE(silence.check(t0 + t, frames, kNoBytes, true, kNone))
        << "at " << t.count() << " s";
  }
}

TEST_F(PeerSilenceTest, ANewConnectionStartsAfresh) {
  ++frames;
  EXPECT_FALSE(silence.check(t0 + 9s, frames, kNoBytes, true, kSecond));
  silence.connected(t0 + 9500ms, frames);  // the old connection's silence is not carried over
  EXPECT_FALSE(silence.check(t0 + 19s, frames, kNoBytes, false, kNone));
  EXPECT_TRUE(silence.check(t0 + 19500ms, frames, kNoBytes, false, kNone));
}

// Our own thread was late (blocked, starved): the peer's bytes wait unread in our socket, so
// the frame count stood still through no fault of the peer's.
TEST_F(PeerSilenceTest, BytesWaitingInOurSocketCountAsHeard) {
  ++frames;  // Hello
  EXPECT_FALSE(silence.check(t0 + 5s, frames, kNoBytes, true, kSecond));
  int asked = 0;
  const auto waiting = [&asked] { return ++asked > 0; };
  EXPECT_FALSE(silence.check(t0 + 9s, frames, waiting, true, kSecond));
  EXPECT_EQ(asked, 0) << "the socket is asked only once the limit is reached";
  EXPECT_FALSE(silence.check(t0 + 15s, frames, waiting, true, kSecond)) << "bytes wait";
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(silence.check(t0 + 24s, frames, kNoBytes, true, kSecond)) << "9 s since them";
  EXPECT_TRUE(silence.check(t0 + 25s, frames, kNoBytes, true, kSecond));
}

// A promise of a frame every 4 s could be kept by two frames in 10 s, or missed by a late
// one: silence within the limit proves nothing then, so such a peer is treated as one that
// promised nothing. A third of the limit still counts.
TEST_F(PeerSilenceTest, APromiseTooLongForTheLimitIsNoPromise) {
  ++frames;  // Hello
  EXPECT_FALSE(silence.check(t0 + 60s, frames, kNoBytes, true, 4000ms));
  const auto why = silence.check(t0 + 120s, frames, kNoBytes, true, PeerSilence::kLongestPromise);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("every 3333 ms"), std::string::npos) << *why;
}

}  // namespace
}  // namespace fwha::sync
