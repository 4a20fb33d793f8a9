// HealthBeat (sync/health_beat.h): when a node tells its peer its Health. The clock is passed
// in; `connection` stands for the link's count of connections.
#include "sync/health_beat.h"

#include <gtest/gtest.h>

#include <chrono>

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;
using Clock = HealthBeat::Clock;

struct HealthBeatTest : ::testing::Test {
  HealthBeat beat;
  Clock::time_point t0 = Clock::time_point(1000s);
  const Health syncing{false, false};
  const Health holding{false, true};
};

TEST_F(HealthBeatTest, TheFirstCheckOnAConnectionSendsAtOnce) {
  EXPECT_EQ(beat.next_repeat(t0), t0);  // nothing sent yet: due now
  const auto h = beat.due(t0, 1, syncing);
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, syncing);
  EXPECT_FALSE(beat.due(t0 + 1ms, 1, syncing));
}

TEST_F(HealthBeatTest, ANewConnectionSendsAtOnceEvenWithNothingChanged) {
  ASSERT_TRUE(beat.due(t0, 1, holding));
  EXPECT_FALSE(beat.due(t0 + 10ms, 1, holding));
  const auto h = beat.due(t0 + 20ms, 2, holding);  // the link came back
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, holding);
}

TEST_F(HealthBeatTest, EachChangeSendsAtOnce) {
  ASSERT_TRUE(beat.due(t0, 1, syncing));
  const auto synced = beat.due(t0 + 3ms, 1, holding);  // a round made us hold the state
  ASSERT_TRUE(synced);
  EXPECT_TRUE(synced->holds_state);
  const Health degraded{true, true};
  const auto d = beat.due(t0 + 4ms, 1, degraded);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->degraded);
  EXPECT_FALSE(beat.due(t0 + 5ms, 1, degraded));
}

// The repeat keeps our Hello's promise (a frame at least every PeerSilence::kSpeakEvery) with
// half of it to spare, and the timer of a Backup is set from next_repeat().
TEST_F(HealthBeatTest, UnchangedHealthRepeatsEveryHalfPromise) {
  static_assert(HealthBeat::kRepeat * 2 == PeerSilence::kSpeakEvery);
  ASSERT_TRUE(beat.due(t0, 1, holding));
  EXPECT_EQ(beat.next_repeat(t0 + 1ms), t0 + HealthBeat::kRepeat);
  EXPECT_FALSE(beat.due(t0 + HealthBeat::kRepeat - 1ms, 1, holding));
  EXPECT_TRUE(beat.due(t0 + HealthBeat::kRepeat, 1, holding));
  // A late check (a busy thread) counts the next repeat from when it went.
  const auto late = t0 + 2 * HealthBeat::kRepeat + 120ms;
  EXPECT_TRUE(beat.due(late, 1, holding));
  EXPECT_EQ(beat.next_repeat(late), late + HealthBeat::kRepeat);
  EXPECT_FALSE(beat.due(late + HealthBeat::kRepeat - 1ms, 1, holding));
}

TEST_F(HealthBeatTest, OverAMinuteOfChecksEveryFiveMsSendsTwiceASecond) {
  int sent = 0;
  for (auto t = 0ms; t < 60s; t += 5ms) sent += beat.due(t0 + t, 1, holding) ? 1 : 0;
  EXPECT_EQ(sent, 120);
}

}  // namespace
}  // namespace fwha::sync
