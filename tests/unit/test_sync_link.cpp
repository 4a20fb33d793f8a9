// SyncLink (sync/sync_link.h) over real TCP on the loopback: 127.0.0.1 and 127.0.0.2 are both
// local on Linux without any address added, so two links pair up in one process. What the
// replicator relies on: a send queue over its bound closes the link from the loop, never
// from inside send() (the caller may be a repair answer still reading its state), the
// connection counts as down at once, and the link comes back.
#include "sync/sync_link.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;

struct Side {
  int ups = 0;
  int downs = 0;
  int frames = 0;
  std::vector<std::string> bad;
  bool* in_send = nullptr;
  bool closed_inside_send = false;
  SyncLink::Handlers handlers() {
    return {[this] { ++ups; },
            [this] {
              ++downs;
              if (in_send && *in_send) closed_inside_send = true;
            },
            [this](const wire::Frame&) {
              ++frames;
              return true;
            },
            [this](const std::string& e) { bad.push_back(e); }, nullptr};
  }
};

class SyncLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A port of our own: tests may run side by side; a taken port is skipped.
    for (int attempt = 0; attempt < 20 && !b; ++attempt) {
      const auto port = static_cast<uint16_t>(30000 + (getpid() * 7 + attempt * 131) % 30000);
      auto la = std::make_unique<SyncLink>(io, *IpAddress::parse("127.0.0.1"),
                                           *IpAddress::parse("127.0.0.2"), port, sa.handlers(),
                                           4096);
      auto lb = std::make_unique<SyncLink>(io, *IpAddress::parse("127.0.0.2"),
                                           *IpAddress::parse("127.0.0.1"), port, sb.handlers());
      if (lb->start() || la->start()) continue;
      a = std::move(la);
      b = std::move(lb);
    }
    ASSERT_TRUE(b) << "no free port on the loopback";
    sa.in_send = &in_send;
    ASSERT_TRUE(run_until([this] { return a->connected() && b->connected(); }, 5s));
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io.restart();
      io.run_for(5ms);
    }
    return true;
  }
  static wire::Frame hello(size_t name_bytes) {
    wire::Frame f;
    f.mutable_hello()->set_protocol_version(kProtocolVersion);
    f.mutable_hello()->set_node(std::string(name_bytes, 'x'));
    return f;
  }

  boost::asio::io_context io;
  Side sa, sb;
  bool in_send = false;
  std::unique_ptr<SyncLink> a, b;  // a: 127.0.0.1, the lower address, dials
};

TEST_F(SyncLinkTest, FramesGoThrough) {
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(a->send(hello(10)));
  ASSERT_TRUE(run_until([this] { return sb.frames == 3; }, 5s));
  EXPECT_TRUE(sb.bad.empty());
}

TEST_F(SyncLinkTest, AQueueOverItsBoundClosesFromTheLoopNotInsideTheSend) {
  const int downs_before = sa.downs;
  in_send = true;
  EXPECT_FALSE(a->send(hello(8000))) << "8000 bytes over a 4096-byte bound";
  in_send = false;
  EXPECT_FALSE(sa.closed_inside_send) << "the close handler ran inside send()";
  EXPECT_EQ(sa.downs, downs_before) << "not yet: from the loop";
  EXPECT_FALSE(a->connected()) << "but down at once for its callers";
  EXPECT_FALSE(a->send(hello(10))) << "nothing goes out on the doomed connection";
  EXPECT_EQ(a->counters().queue_overflows, 1u);
  ASSERT_TRUE(run_until([this, downs_before] { return sa.downs == downs_before + 1; }, 5s));
  // The lower address dials again (every 50 ms), and frames flow.
  ASSERT_TRUE(run_until([this] { return a->connected() && b->connected(); }, 5s));
  const int frames = sb.frames;
  EXPECT_TRUE(a->send(hello(10)));
  EXPECT_TRUE(run_until([this, frames] { return sb.frames == frames + 1; }, 5s));
}

// The owner closes a connection (a silent peer, sync/peer_silence.h): from the loop, down at
// once for its callers, and back as after any disconnect.
TEST_F(SyncLinkTest, CloseEndsTheConnectionAndTheLinkComesBack) {
  const int downs_before = sa.downs;
  const uint64_t connects_before = a->counters().connects;
  b->close("peer silent");
  EXPECT_FALSE(b->connected());
  EXPECT_EQ(sb.downs, 0) << "not yet: from the loop";
  ASSERT_TRUE(run_until([this, downs_before] { return sa.downs == downs_before + 1; }, 5s))
      << "the peer sees the connection end";
  ASSERT_TRUE(run_until([this, connects_before] {
    return a->connected() && b->connected() && a->counters().connects > connects_before;
  }, 5s));
  EXPECT_EQ(sb.downs, 1);
  const int frames = sa.frames;
  EXPECT_TRUE(b->send(hello(10)));
  EXPECT_TRUE(run_until([this, frames] { return sa.frames == frames + 1; }, 5s));
  b->close("twice");  // nothing to close twice: no second down
  b->close("again");
  ASSERT_TRUE(run_until([this] { return sb.downs == 2; }, 5s));
  io.restart();
  io.run_for(50ms);
  EXPECT_EQ(sb.downs, 2);
}

}  // namespace
}  // namespace fwha::sync
