// The replication thread's scheduling class: real-time while mostly idle, normal while busy,
// real-time again only after a calm second, or at the first quiet window once table-sized
// work is over (util/busy_governor.h).
#include <gtest/gtest.h>

#include "util/busy_governor.h"

namespace fwha::rt {
namespace {

using Class = BusyGovernor::Class;
using std::chrono::milliseconds;

TEST(BusyGovernor, StaysRealTimeAtATypicalTrickle) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  for (int i = 0; i < 100; ++i) {
    t += milliseconds(100);
    EXPECT_EQ(g.sample(0.15, t), Class::RealTime);  // 10k flows/s: ~15 % of a core
  }
}

TEST(BusyGovernor, DemotesInTheFirstBusyWindowAndWaitsACalmSecond) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.9, t), Class::Normal) << "a burst or a bulk write";
  for (int i = 0; i < 9; ++i) {
    t += milliseconds(100);
    EXPECT_EQ(g.sample(0.1, t), Class::Normal) << "calm for " << (i + 1) * 100 << " ms only";
  }
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.1, t), Class::RealTime) << "a second below a quarter core";
}

TEST(BusyGovernor, ModerateLoadKeepsANormalThreadNormal) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  t += milliseconds(100);
  g.sample(0.8, t);
  for (int i = 0; i < 30; ++i) {
    t += milliseconds(100);
    EXPECT_EQ(g.sample(0.4, t), Class::Normal) << "between the thresholds: no flapping";
  }
}

TEST(BusyGovernor, BulkWorkDemotesAtOnceAndPromotesAtTheFirstQuietWindowAfterIt) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.05, t), Class::RealTime);
  t += milliseconds(10);
  EXPECT_EQ(g.bulk_work(t), Class::Normal) << "before the dump, not a busy window later";
  EXPECT_EQ(g.current(), Class::Normal);
  EXPECT_TRUE(g.after_table_work()) << "the daemon logs this drop and its end as routine";
  t += milliseconds(90);
  EXPECT_EQ(g.sample(0.6, t, /*table_work=*/false), Class::Normal)
      << "the window the work ended in was busy";
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.1, t, false), Class::RealTime)
      << "quiet and no table work: real-time again, without a calm second (an empty table's "
         "round every 30 s would otherwise cost 1-2 s at normal priority each time)";
  EXPECT_FALSE(g.after_table_work());
}

TEST(BusyGovernor, StaysNormalForAsLongAsTableWorkRunsHoweverQuiet) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  g.bulk_work(t);
  for (int i = 0; i < 30; ++i) {
    t += milliseconds(100);
    EXPECT_EQ(g.sample(0.05, t, /*table_work=*/true), Class::Normal)
        << "a repair answer paced by the peer's acks idles between its parts";
  }
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.05, t, false), Class::RealTime);
}

TEST(BusyGovernor, ABusySpellRightAfterTableWorkWaitsACalmSecond) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  g.bulk_work(t);
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.6, t, false), Class::Normal) << "the window the work ended in";
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.9, t, false), Class::Normal) << "a burst of events after the work";
  EXPECT_FALSE(g.after_table_work()) << "normal for load now: its end is not routine";
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.2, t, false), Class::Normal) << "busy spells wait a calm second";
  t += milliseconds(1000);
  EXPECT_EQ(g.sample(0.1, t, false), Class::RealTime);
}

TEST(BusyGovernor, TableWorkIdleForTenSecondsNoLongerHoldsTheThread) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  g.bulk_work(t);
  for (int i = 0; i < 99; ++i) {
    t += milliseconds(100);
    EXPECT_EQ(g.sample(0.01, t, /*table_work=*/true), Class::Normal);
  }
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.01, t, true), Class::RealTime)
      << "a repair the sink believes in after its source dropped it (no RepairEnd)";
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.9, t, true), Class::Normal) << "busy again: normal at once";
}

TEST(BusyGovernor, ABusySpellStillNeedsACalmSecondAfterAnEarlierTableWork) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  g.bulk_work(t);
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.1, t, false), Class::RealTime);
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.9, t), Class::Normal) << "a burst of events, not table work";
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.1, t), Class::Normal) << "busy spells wait a calm second";
  t += milliseconds(1000);
  EXPECT_EQ(g.sample(0.1, t), Class::RealTime);
}

}  // namespace
}  // namespace fwha::rt
