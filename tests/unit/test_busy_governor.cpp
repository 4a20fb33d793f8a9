// The replication thread's scheduling class: real-time while mostly idle, normal while busy,
// real-time again only after a calm second (util/busy_governor.h).
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

TEST(BusyGovernor, BulkWorkDemotesAtOnceAndCountsAsBusy) {
  BusyGovernor g;
  std::chrono::steady_clock::time_point t{};
  t += milliseconds(100);
  EXPECT_EQ(g.sample(0.05, t), Class::RealTime);
  t += milliseconds(10);
  EXPECT_EQ(g.bulk_work(t), Class::Normal) << "before the dump, not a busy window later";
  EXPECT_EQ(g.current(), Class::Normal);
  // The dump itself was short: still normal until a calm second has passed since it began.
  t += milliseconds(90);
  EXPECT_EQ(g.sample(0.1, t), Class::Normal);
  t += milliseconds(900);
  EXPECT_EQ(g.sample(0.1, t), Class::Normal) << "990 ms after the bulk work started";
  t += milliseconds(20);
  EXPECT_EQ(g.sample(0.1, t), Class::RealTime);
}

}  // namespace
}  // namespace fwha::rt
