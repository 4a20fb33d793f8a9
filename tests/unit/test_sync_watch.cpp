// The split-brain watch: the sync link down while the peer's adverts arrive raises one alert
// after the hold-off, and "back" once it reconnects; a dead peer (no adverts) is a failover,
// not an alert.
#include <gtest/gtest.h>

#include "daemon/sync_watch.h"

namespace fwha::daemon {
namespace {

using namespace std::chrono_literals;
using Alert = SyncWatch::Alert;

TEST(SyncWatch, LinkDownWithPeerAliveAlertsOnceAfterTheHoldOff) {
  SyncWatch w;
  SyncWatch::Clock::time_point t{};
  EXPECT_EQ(w.update(t, true, true), std::nullopt);
  EXPECT_EQ(w.update(t += 1s, false, true), std::nullopt) << "a reconnect may be under way";
  EXPECT_EQ(w.update(t += 2s, false, true), std::nullopt);
  EXPECT_EQ(w.update(t += 1s, false, true), Alert::SyncDownPeerAlive);
  EXPECT_EQ(w.update(t += 1s, false, true), std::nullopt) << "one alert per episode";
  EXPECT_EQ(w.update(t += 1s, true, true), Alert::SyncBack);
  EXPECT_EQ(w.update(t += 1s, true, true), std::nullopt);
}

TEST(SyncWatch, ShortDropsAndDeadPeersRaiseNothing) {
  SyncWatch w;
  SyncWatch::Clock::time_point t{};
  EXPECT_EQ(w.update(t, false, true), std::nullopt);
  EXPECT_EQ(w.update(t += 2s, true, true), std::nullopt) << "reconnected within the hold-off";
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(w.update(t += 1s, false, false), std::nullopt) << "peer silent: it is down";
  }
}

}  // namespace
}  // namespace fwha::daemon
