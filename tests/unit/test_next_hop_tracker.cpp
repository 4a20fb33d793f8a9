// The tracked next-hops' verdict: unreachable after `misses` unanswered probes in a row,
// reachable again at the first answer; degraded while any target is unreachable. And the ICMP
// echo packets the probes are made of.
#include <gtest/gtest.h>

#include <vector>

#include "track/icmp_echo.h"
#include "track/next_hop_tracker.h"
#include "util/inet_checksum.h"

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

// The probes on the wire: our echo request, and which replies are ours.
TEST(IcmpEcho, Ipv4RequestCarriesIdSequenceAndAValidChecksum) {
  const auto p = fwha::track::echo_request(fwha::Family::V4, 0xBEEF, 0x0102);
  EXPECT_EQ(p[0], 8);  // echo request
  EXPECT_EQ(p[1], 0);
  EXPECT_EQ(p[4], 0xBE);
  EXPECT_EQ(p[5], 0xEF);
  EXPECT_EQ(p[6], 0x01);
  EXPECT_EQ(p[7], 0x02);
  EXPECT_EQ(fwha::inet::fold_complement(fwha::inet::sum16(p)), 0);  // checksum verifies
  const auto p6 = fwha::track::echo_request(fwha::Family::V6, 0xBEEF, 1);
  EXPECT_EQ(p6[0], 128);  // ICMPv6 echo request; its checksum is the kernel's job
  EXPECT_EQ(p6[2], 0);
  EXPECT_EQ(p6[3], 0);
}

TEST(IcmpEcho, OnlyEchoRepliesWithOurIdentifierAreOurs) {
  std::vector<uint8_t> v4(20 + 16, 0);
  v4[0] = 0x45;  // IPv4, 20-byte header
  v4[20] = 0;    // echo reply
  v4[24] = 0xBE;
  v4[25] = 0xEF;
  using fwha::track::is_our_echo_reply;
  EXPECT_TRUE(is_our_echo_reply(v4, fwha::Family::V4, 0xBEEF));
  EXPECT_FALSE(is_our_echo_reply(v4, fwha::Family::V4, 0xBEEE));  // another pinger's
  v4[20] = 8;
  EXPECT_FALSE(is_our_echo_reply(v4, fwha::Family::V4, 0xBEEF));  // a request, not a reply
  v4[20] = 0;
  v4[0] = 0x46;  // 24-byte header: the ICMP part moves, and here is cut short
  EXPECT_FALSE(is_our_echo_reply(std::span(v4).first(30), fwha::Family::V4, 0xBEEF));
  v4[0] = 0x44;  // a header length below 20 is malformed
  EXPECT_FALSE(is_our_echo_reply(v4, fwha::Family::V4, 0xBEEF));
  EXPECT_FALSE(is_our_echo_reply({}, fwha::Family::V4, 0xBEEF));
  std::vector<uint8_t> v6(16, 0);  // raw ICMPv6 sockets read no IP header
  v6[0] = 129;                     // echo reply
  v6[4] = 0xBE;
  v6[5] = 0xEF;
  EXPECT_TRUE(is_our_echo_reply(v6, fwha::Family::V6, 0xBEEF));
  EXPECT_FALSE(is_our_echo_reply(std::span(v6).first(7), fwha::Family::V6, 0xBEEF));
}
