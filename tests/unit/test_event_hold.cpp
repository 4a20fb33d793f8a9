// EventHold (sync/event_hold.h): when the Master's event pump sends what it read, and when it
// holds it for the next arrival. Time is passed in, so no clock runs.
#include "sync/event_hold.h"

#include <gtest/gtest.h>

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;
using Clock = EventHold::Clock;

class EventHoldTest : public ::testing::Test {
 protected:
  // kStreak events 100 us apart, each sent at once (as the pump does after a true): one more
  // short gap makes them a stream. Returns the time of the last.
  Clock::time_point establish(EventHold& h, Clock::time_point from) {
    Clock::time_point t = from;
    for (unsigned i = 0; i < EventHold::kStreak; ++i, t += 100us) {
      EXPECT_TRUE(h.send_now(t, 1, 1)) << "event " << i << " of a stream not yet established";
    }
    return t - 100us;
  }
  // An established stream, and its next change held for a successor: at `held_at`.
  void hold_one(Clock::time_point& held_at) {
    held_at = establish(hold, t0) + 100us;
    ASSERT_FALSE(hold.send_now(held_at, 1, 1));
    ASSERT_TRUE(hold.holding());
  }
  EventHold hold{2, 300us};
  Clock::time_point t0 = Clock::time_point{} + 1h;
};

TEST_F(EventHoldTest, AnEstablishedStreamGoesOutInPairsEachSentWhenItsSecondArrives) {
  const auto t = establish(hold, t0);
  EXPECT_FALSE(hold.send_now(t + 100us, 1, 1));
  EXPECT_TRUE(hold.holding());
  EXPECT_TRUE(hold.send_now(t + 200us, 1, 2));
  EXPECT_FALSE(hold.holding());
  EXPECT_FALSE(hold.send_now(t + 300us, 1, 1));
  EXPECT_TRUE(hold.send_now(t + 400us, 1, 2));
}

// A flow's own events come close together (a UDP request and its answer, a handshake): they
// are no stream, and none of them waits for a successor that may never come.
TEST_F(EventHoldTest, AShortBurstIsNeverHeld) {
  for (unsigned i = 0; i < EventHold::kStreak; ++i) {
    EXPECT_TRUE(hold.send_now(t0 + i * 20us, 1, 1)) << "event " << i;
  }
  EXPECT_FALSE(hold.holding());
  // After a pause, the next burst starts from nothing.
  for (unsigned i = 0; i < EventHold::kStreak; ++i) {
    EXPECT_TRUE(hold.send_now(t0 + 10ms + i * 20us, 1, 1)) << "event " << i;
  }
}

TEST_F(EventHoldTest, OneLongGapEndsTheStream) {
  const auto t = establish(hold, t0);
  EXPECT_TRUE(hold.send_now(t + 300us, 1, 1)) << "300 us apart is not a stream's gap";
  EXPECT_TRUE(hold.send_now(t + 400us, 1, 1)) << "one short gap is not a stream again";
}

TEST_F(EventHoldTest, AHeldChangeGoesWithTheNextArrivalEvenALateOne) {
  Clock::time_point held;
  ASSERT_NO_FATAL_FAILURE(hold_one(held));
  // The stream paused, then resumed: the pause ends the stream, and both go.
  EXPECT_TRUE(hold.send_now(held + 1900us, 1, 2));
  EXPECT_FALSE(hold.holding());
}

TEST_F(EventHoldTest, NothingIsHeldLongerThanTheGapWhenReadsKeepComing) {
  EventHold four{4, 300us};
  const auto t = establish(four, t0);
  EXPECT_FALSE(four.send_now(t + 100us, 1, 1));
  EXPECT_FALSE(four.send_now(t + 200us, 1, 2));
  EXPECT_FALSE(four.send_now(t + 390us, 1, 3)) << "held 290 us: under the gap";
  EXPECT_TRUE(four.send_now(t + 400us, 1, 3)) << "held 300 us: goes, under four pending";
}

// A wake-up that read nothing (the events were taken by a drain in between) is no arrival:
// it neither extends the stream nor breaks it.
TEST_F(EventHoldTest, AReadOfNothingIsNoArrival) {
  const auto t = establish(hold, t0);
  EXPECT_FALSE(hold.send_now(t + 250us, 0, 0));
  // Counted as an arrival, it would make the next gap 50 us, not 350: still a stream.
  EXPECT_TRUE(hold.send_now(t + 350us, 1, 1)) << "350 us after the last arrival: no stream";
}

TEST_F(EventHoldTest, AReadThatLeavesNothingPendingHoldsNothing) {
  Clock::time_point held;
  ASSERT_NO_FATAL_FAILURE(hold_one(held));
  // The held change went out some other way (a drain before a handover, a full frame).
  EXPECT_FALSE(hold.send_now(held + 50us, 1, 0));
  EXPECT_FALSE(hold.holding());
}

TEST_F(EventHoldTest, TheHeartbeatSendsWhatIsHeld) {
  Clock::time_point held;
  ASSERT_NO_FATAL_FAILURE(hold_one(held));
  hold.sent();  // what EventPump::send_held() does after flushing, at the heartbeat
  EXPECT_FALSE(hold.holding());
  // The stream goes on: the next one is held again, as the first of a new pair.
  EXPECT_FALSE(hold.send_now(held + 100us, 1, 1));
  EXPECT_TRUE(hold.holding());
}

TEST_F(EventHoldTest, OffBelowTwoEntriesOrWithoutAGap) {
  for (size_t entries : {0u, 1u}) {
    EventHold off{entries, 300us};
    EXPECT_FALSE(off.enabled());
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(off.send_now(t0 + i * 10us, 1, 1)) << entries;
  }
  EventHold no_gap{2, 0us};
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(no_gap.send_now(t0 + i * 10us, 1, 1));
}

TEST_F(EventHoldTest, ABurstReadAtOnceGoesAtOnce) {
  const auto t = establish(hold, t0);
  EXPECT_TRUE(hold.send_now(t + 50us, 40, 40));
}

}  // namespace
}  // namespace fwha::sync
