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
  EventHold hold{2, 300us};
  Clock::time_point t0 = Clock::time_point{} + 1h;
};

TEST_F(EventHoldTest, TheFirstEventOfASpellGoesAtOnce) {
  EXPECT_TRUE(hold.send_now(t0, 1, 1));
  EXPECT_FALSE(hold.holding());
}

TEST_F(EventHoldTest, ADenseStreamGoesOutInPairsEachSentWhenItsSecondArrives) {
  ASSERT_TRUE(hold.send_now(t0, 1, 1));
  // One every 100 us: the second of the stream waits for the third, and so on.
  EXPECT_FALSE(hold.send_now(t0 + 100us, 1, 1));
  EXPECT_TRUE(hold.holding());
  EXPECT_TRUE(hold.send_now(t0 + 200us, 1, 2));
  EXPECT_FALSE(hold.holding());
  EXPECT_FALSE(hold.send_now(t0 + 300us, 1, 1));
  EXPECT_TRUE(hold.send_now(t0 + 400us, 1, 2));
}

TEST_F(EventHoldTest, AnEventAGapAfterTheLastIsNotHeld) {
  ASSERT_TRUE(hold.send_now(t0, 1, 1));
  EXPECT_TRUE(hold.send_now(t0 + 300us, 1, 1)) << "300 us apart is not dense";
  EXPECT_TRUE(hold.send_now(t0 + 5ms, 1, 1));
}

TEST_F(EventHoldTest, AHeldChangeGoesWithTheNextArrivalEvenALateOne) {
  ASSERT_TRUE(hold.send_now(t0, 1, 1));
  ASSERT_FALSE(hold.send_now(t0 + 100us, 1, 1));
  // The stream paused, then resumed: the pause ends the density, and both go.
  EXPECT_TRUE(hold.send_now(t0 + 2ms, 1, 2));
  EXPECT_FALSE(hold.holding());
}

TEST_F(EventHoldTest, NothingIsHeldLongerThanTheGapWhenReadsKeepComing) {
  EventHold four{4, 300us};
  ASSERT_TRUE(four.send_now(t0, 1, 1));
  EXPECT_FALSE(four.send_now(t0 + 100us, 1, 1));
  EXPECT_FALSE(four.send_now(t0 + 200us, 1, 2));
  // Still dense, still under four pending, but the first was held 300 us.
  EXPECT_FALSE(four.send_now(t0 + 390us, 0, 2)) << "a wake-up that read nothing is no arrival";
  EXPECT_TRUE(four.send_now(t0 + 400us, 1, 3));
}

TEST_F(EventHoldTest, AReadThatLeavesNothingPendingHoldsNothing) {
  ASSERT_TRUE(hold.send_now(t0, 1, 1));
  ASSERT_FALSE(hold.send_now(t0 + 100us, 1, 1));
  // The held change went out some other way (a drain before a handover, a full frame).
  EXPECT_FALSE(hold.send_now(t0 + 150us, 1, 0));
  EXPECT_FALSE(hold.holding());
}

TEST_F(EventHoldTest, TheHeartbeatSendsWhatIsHeld) {
  ASSERT_TRUE(hold.send_now(t0, 1, 1));
  ASSERT_FALSE(hold.send_now(t0 + 100us, 1, 1));
  ASSERT_TRUE(hold.holding());
  hold.sent();  // what EventPump::send_held() does after flushing, at the heartbeat
  EXPECT_FALSE(hold.holding());
  // The next arrival after a heartbeat-length pause starts a new spell.
  EXPECT_TRUE(hold.send_now(t0 + 5ms, 1, 1));
}

TEST_F(EventHoldTest, OffBelowTwoEntries) {
  for (size_t entries : {0u, 1u}) {
    EventHold off{entries, 300us};
    EXPECT_FALSE(off.enabled());
    EXPECT_TRUE(off.send_now(t0, 1, 1));
    EXPECT_TRUE(off.send_now(t0 + 10us, 1, 1)) << entries;
  }
}

TEST_F(EventHoldTest, ABurstReadAtOnceGoesAtOnce) {
  ASSERT_TRUE(hold.send_now(t0, 1, 1));
  EXPECT_TRUE(hold.send_now(t0 + 50us, 40, 40));
}

}  // namespace
}  // namespace fwha::sync
