// SyncService (sync/sync_service.h) end to end, kernel-free: two services in one process,
// paired over real TCP on the loopback (127.0.0.1 and 127.0.0.2, as in test_sync_link), with
// fake conntrack tables and `replicate` off, so only the link's own conversation runs: Hello,
// the Master's heartbeat, and both nodes' Health (sync/health_beat.h). What the election relies
// on: a change of a node's degraded flag reaches the peer at once, a Backup's Health repeats
// on its own timer when nobody else speaks, a promoted node beats every 5 ms at once, and the
// peer's word is void as soon as the link is down.
#include "sync/sync_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "fake_conntrack.h"
#include "fake_expect.h"

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Polls `done` every millisecond; the time it took, or nullopt after `bound`.
std::optional<std::chrono::milliseconds> time_until(const std::function<bool()>& done,
                                                    std::chrono::milliseconds bound) {
  const auto start = Clock::now();
  while (!done()) {
    if (Clock::now() - start >= bound) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

SyncService::Options options(const char* self, const char* peer, uint16_t port) {
  SyncService::Options o;
  o.node_name = self;
  o.peer_name = peer;
  o.local_address = *IpAddress::parse(self);
  o.peer_address = *IpAddress::parse(peer);
  o.port = port;
  o.replicate = false;
  o.kernel_ports = [] {
    SyncService::Options::KernelPorts p;
    p.writer = std::make_unique<test::FakeTable>();
    p.reader = std::make_unique<test::FakeTable>();
    p.expect_writer = std::make_unique<test::FakeExpectTable>();
    p.expect_reader = std::make_unique<test::FakeExpectTable>();
    return p;
  };
  return o;
}

class SyncServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A port of our own: tests may run side by side; a taken port is skipped.
    for (int attempt = 0; attempt < 20 && !b; ++attempt) {
      const auto port = static_cast<uint16_t>(20000 + (getpid() * 11 + attempt * 173) % 10000);
      auto sa = std::make_unique<SyncService>(options("127.0.0.1", "127.0.0.2", port));
      auto sb = std::make_unique<SyncService>(options("127.0.0.2", "127.0.0.1", port));
      std::string what;
      if (sa->start(what) || sb->start(what)) continue;
      a = std::move(sa);
      b = std::move(sb);
    }
    ASSERT_TRUE(b) << "no free port on the loopback";
    ASSERT_TRUE(time_until([this] { return a->status().connected && b->status().connected; },
                           5s))
        << "the pair did not connect";
  }
  // Frames `s` received so far (every one counts, Hello and Health included).
  static uint64_t frames(const SyncService& s) { return s.status().counters.frames_received; }

  std::unique_ptr<SyncService> a, b;
};

// Both nodes are Backups here, so neither has a heartbeat to send: only their own repeat
// timers speak. A Backup whose timer were left unarmed would be closed by the peer as silent.
TEST_F(SyncServiceTest, TwoIdleBackupsEachHearTheOtherTwiceASecond) {
  const uint64_t a0 = frames(*a), b0 = frames(*b);
  std::this_thread::sleep_for(2100ms);
  // Status is published every 100 ms: up to 0.1 s of frames may not show yet.
  EXPECT_GE(frames(*a) - a0, 3u);
  EXPECT_GE(frames(*b) - b0, 3u);
  EXPECT_LE(frames(*a) - a0, 6u) << "a Backup's Health goes twice a second, not more";
  EXPECT_EQ(a->status().peer_silences, 0u);
  EXPECT_EQ(b->status().peer_silences, 0u);
}

// Three changes in a row, each told within 200 ms. The repeat alone (every 500 ms) would let
// one through by luck, not three.
TEST_F(SyncServiceTest, ABackupTellsEachChangeOfItsDegradedFlagAtOnce) {
  for (const bool degraded : {true, false, true}) {
    b->set_degraded(degraded);
    const auto took = time_until([&] { return a->peer_degraded() == degraded; }, 2s);
    ASSERT_TRUE(took) << "degraded=" << degraded << " never reached the peer";
    EXPECT_LT(*took, 200ms) << "degraded=" << degraded;
  }
}

TEST_F(SyncServiceTest, APromotedNodeBeatsEveryFiveMsAtOnce) {
  EXPECT_FALSE(b->last_master_heartbeat());  // no Master yet
  a->set_master(true);
  const auto first = time_until([&] { return b->last_master_heartbeat().has_value(); }, 2s);
  ASSERT_TRUE(first) << "no heartbeat after the promotion";
  EXPECT_LT(*first, 200ms);
  // Then the pace: never more than a few ms old (the Backup's graces allow 15 ms).
  int stale = 0;
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(2ms);
    const auto last = b->last_master_heartbeat();
    if (!last || Clock::now() - *last > 50ms) ++stale;
  }
  EXPECT_LE(stale, 2) << "the Master's heartbeat was older than 50 ms in " << stale
                      << " of 200 samples";
}

TEST_F(SyncServiceTest, ThePeersWordIsVoidAsSoonAsTheLinkIsDown) {
  a->set_degraded(true);
  ASSERT_TRUE(time_until([&] { return b->peer_degraded(); }, 2s));
  a.reset();  // stops the service: its connection closes
  const auto took = time_until([&] { return !b->peer_degraded(); }, 2s);
  ASSERT_TRUE(took) << "the peer still counts as degraded with the link down";
  EXPECT_LT(*took, 200ms);
}

}  // namespace
}  // namespace fwha::sync
