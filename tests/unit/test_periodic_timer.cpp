// PeriodicTimer (util/periodic_timer.h): ticks repeatedly from one start(), each wait ends at
// a tick rather than at once (the expiry count is read, so the edge-triggered reactor does
// not report a stale expiry), and stop() ends the ticks.
#include "util/periodic_timer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>

namespace {

using namespace std::chrono_literals;

TEST(PeriodicTimer, TicksRepeatedlyAndEachWaitEndsAtATick) {
  boost::asio::io_context io;
  fwha::PeriodicTimer ticks(io);
  ASSERT_FALSE(ticks.open());
  ASSERT_FALSE(ticks.start(5ms));
  EXPECT_TRUE(ticks.running());

  int seen = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::function<void(boost::system::error_code)> on_tick = [&](boost::system::error_code ec) {
    ASSERT_FALSE(ec) << ec.message();
    if (++seen < 10) ticks.async_wait(on_tick);
  };
  ticks.async_wait(on_tick);
  io.run_for(2s);  // bound: 10 ticks of 5 ms take 50 ms
  const auto elapsed = std::chrono::steady_clock::now() - t0;

  EXPECT_EQ(seen, 10);
  // A wait that ended at once (a stale expiry) would make 10 waits far shorter than 10 ticks.
  EXPECT_GE(elapsed, 45ms);
}

TEST(PeriodicTimer, StopEndsTheTicks) {
  boost::asio::io_context io;
  fwha::PeriodicTimer ticks(io);
  ASSERT_FALSE(ticks.open());
  ASSERT_FALSE(ticks.start(2ms));

  int seen = 0;
  ticks.async_wait([&](boost::system::error_code ec) {
    ASSERT_FALSE(ec);
    ++seen;
    ASSERT_FALSE(ticks.stop());
    EXPECT_FALSE(ticks.running());
    ticks.async_wait([&](boost::system::error_code) { ++seen; });
  });
  io.run_for(100ms);  // fifty periods: a tick after stop() would have come
  EXPECT_EQ(seen, 1);

  ticks.cancel();  // the pending wait ends as aborted
  io.restart();
  io.run_for(100ms);
  EXPECT_EQ(seen, 2);
}

}  // namespace
