// The tracked next-hops' verdict: unreachable after `misses` unanswered probes in a row,
// reachable again at the first answer; degraded while any target is unreachable.
#include <gtest/gtest.h>

#include "track/next_hop_tracker.h"

using fwha::IpAddress;
using fwha::track::NextHopTracker;

namespace {

const IpAddress kRouter = *IpAddress::parse("198.51.100.254");
const IpAddress kRouter6 = *IpAddress::parse("2001:db8::1");

}  // namespace

TEST(NextHopTracker, ReachableUntilMissesInARow) {
  NextHopTracker t({kRouter}, 3);
  EXPECT_FALSE(t.degraded());  // nothing known yet: not degraded at start
  EXPECT_FALSE(t.probe_sent(0));  // the first probe has no predecessor to miss
  EXPECT_FALSE(t.probe_sent(0));  // miss 1
  EXPECT_FALSE(t.probe_sent(0));  // miss 2
  EXPECT_EQ(t.targets()[0].misses, 2u);
  EXPECT_FALSE(t.degraded());
  EXPECT_TRUE(t.probe_sent(0));  // miss 3: changed
  EXPECT_TRUE(t.degraded());
  EXPECT_FALSE(t.targets()[0].reachable);
  EXPECT_FALSE(t.probe_sent(0));  // still degraded: no change
}

TEST(NextHopTracker, AnAnswerResetsTheCountAndRestoresReachability) {
  NextHopTracker t({kRouter}, 2);
  t.probe_sent(0);
  t.probe_sent(0);  // miss 1
  EXPECT_FALSE(t.answer_received(0));  // late answer: still reachable, count reset
  EXPECT_EQ(t.targets()[0].misses, 0u);
  t.probe_sent(0);
  t.probe_sent(0);  // miss 1
  EXPECT_TRUE(t.probe_sent(0));  // miss 2: unreachable
  EXPECT_TRUE(t.answer_received(0));  // changed back
  EXPECT_FALSE(t.degraded());
  EXPECT_EQ(t.targets()[0].probes, 5u);
  EXPECT_EQ(t.targets()[0].answers, 2u);
}

TEST(NextHopTracker, AnsweredProbesAreNeverMisses) {
  NextHopTracker t({kRouter}, 1);
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(t.probe_sent(0));
    t.answer_received(0);
  }
  EXPECT_FALSE(t.degraded());
}

TEST(NextHopTracker, DegradedWhileAnyTargetIsUnreachable) {
  NextHopTracker t({kRouter, kRouter6}, 1);
  t.probe_sent(0);
  t.probe_sent(1);
  t.answer_received(0);
  t.probe_sent(0);
  EXPECT_TRUE(t.probe_sent(1));  // only the IPv6 router missed
  EXPECT_TRUE(t.degraded());
  EXPECT_TRUE(t.targets()[0].reachable);
  EXPECT_EQ(t.find(kRouter6), 1);
  EXPECT_EQ(t.find(*IpAddress::parse("192.0.2.1")), -1);
  EXPECT_FALSE(t.probe_sent(7));  // no such target: ignored
}
