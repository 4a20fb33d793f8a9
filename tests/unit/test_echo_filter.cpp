// Echo suppression: our own writes coming back as events are recognised, real changes pass.
#include <gtest/gtest.h>

#include "flow_samples.h"
#include "sync/echo_filter.h"

namespace fwha::sync {
namespace {

using namespace std::chrono_literals;

TEST(EchoFilter, OwnWriteIsAnEchoOnce) {
  EchoFilter f;
  EchoFilter::Clock::time_point t{};
  FlowChange c{FlowChangeKind::New, test::snat_tcp_flow()};
  f.note_written(c, t);
  FlowChange event = c;
  event.kind = FlowChangeKind::New;
  event.entry.timeout_s = 431990;  // the kernel reports its own timeout
  EXPECT_TRUE(f.is_echo(event, t + 1ms));
  EXPECT_FALSE(f.is_echo(event, t + 2ms)) << "a second identical event is a real change";
}

TEST(EchoFilter, ChangedContentIsNotAnEcho) {
  EchoFilter f;
  EchoFilter::Clock::time_point t{};
  FlowChange c{FlowChangeKind::New, test::snat_tcp_flow()};
  f.note_written(c, t);
  FlowChange later = c;
  later.kind = FlowChangeKind::Update;
  later.entry.tcp_state = 4;  // FIN_WAIT: the flow moved on locally
  EXPECT_FALSE(f.is_echo(later, t + 1ms));
}

TEST(EchoFilter, DestroyMatchesOnlyDestroy) {
  EchoFilter f;
  EchoFilter::Clock::time_point t{};
  f.note_written({FlowChangeKind::Destroy, test::snat_tcp_flow()}, t);
  EXPECT_FALSE(f.is_echo({FlowChangeKind::New, test::snat_tcp_flow()}, t));
  EXPECT_TRUE(f.is_echo({FlowChangeKind::Destroy, test::snat_tcp_flow()}, t));
}

TEST(EchoFilter, RecordsExpireAndStayBounded) {
  EchoFilter f(100ms, 2);
  EchoFilter::Clock::time_point t{};
  FlowChange c{FlowChangeKind::New, test::snat_tcp_flow(1)};
  f.note_written(c, t);
  EXPECT_FALSE(f.is_echo(c, t + 150ms)) << "outside the window: a real event";
  for (uint16_t p = 1; p <= 10; ++p) f.note_written({FlowChangeKind::New, test::snat_tcp_flow(p)}, t);
  EXPECT_LE(f.size(), 2u);
  EXPECT_TRUE(f.is_echo({FlowChangeKind::New, test::snat_tcp_flow(10)}, t));
}

}  // namespace
}  // namespace fwha::sync
