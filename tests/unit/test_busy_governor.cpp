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

}  // namespace
}  // namespace fwha::rt
