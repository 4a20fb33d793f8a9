// Which packets of the node's own bypass conntrack (nft/own_traffic.h). The kernel side, the
// rules actually matching with full tables, is proven by tests/lab/full_table.py.
#include "nft/own_traffic.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace fwha::nft {
namespace {

IpAddress addr(const char* text) { return *IpAddress::parse(text); }

// A packet as the rules see it, and the rules' meaning: every field a rule sets must match.
struct Packet {
  Hook hook;
  uint8_t l4proto;
  IpAddress src, dst;
  uint16_t sport = 0, dport = 0;
};

bool exempt(const std::vector<NotrackRule>& rules, const Packet& p) {
  return std::any_of(rules.begin(), rules.end(), [&](const NotrackRule& r) {
    return r.hook == p.hook && r.l4proto == p.l4proto && (!r.src || *r.src == p.src) &&
           (!r.dst || *r.dst == p.dst) && (!r.sport || *r.sport == p.sport) &&
           (!r.dport || *r.dport == p.dport);
  });
}

const IpAddress kLocal = addr("203.0.113.1"), kPeer = addr("203.0.113.2");

TEST(OwnTraffic, VrrpFromAndToAnyoneBothWays) {
  const auto rules = own_traffic_rules(kLocal, kPeer, 7788);
  // Adverts on the LAN come from the peer's LAN address, not the sync link's; a stranger's
  // advert is refused by the election (advert_admission.h), not by conntrack.
  EXPECT_TRUE(exempt(rules, {Hook::Prerouting, kIpProtoVrrp, addr("192.0.2.3"),
                             addr("224.0.0.18")}));
  EXPECT_TRUE(exempt(rules, {Hook::Output, kIpProtoVrrp, addr("192.0.2.2"),
                             addr("224.0.0.18")}));
  EXPECT_TRUE(exempt(rules, {Hook::Output, kIpProtoVrrp, addr("fe80::2"), addr("ff02::12")}));
}

TEST(OwnTraffic, SyncLinkBothDirectionsWhicheverNodeConnected) {
  const auto rules = own_traffic_rules(kLocal, kPeer, 7788);
  // We connected: our ephemeral port to the peer's 7788.
  EXPECT_TRUE(exempt(rules, {Hook::Output, kIpProtoTcp, kLocal, kPeer, 40000, 7788}));
  EXPECT_TRUE(exempt(rules, {Hook::Prerouting, kIpProtoTcp, kPeer, kLocal, 7788, 40000}));
  // The peer connected.
  EXPECT_TRUE(exempt(rules, {Hook::Prerouting, kIpProtoTcp, kPeer, kLocal, 40000, 7788}));
  EXPECT_TRUE(exempt(rules, {Hook::Output, kIpProtoTcp, kLocal, kPeer, 7788, 40000}));
}

TEST(OwnTraffic, NothingElseBypassesConntrack) {
  const auto rules = own_traffic_rules(kLocal, kPeer, 7788);
  // Other TCP between the two nodes (ssh on the sync link) stays tracked.
  EXPECT_FALSE(exempt(rules, {Hook::Output, kIpProtoTcp, kLocal, kPeer, 40000, 22}));
  // Port 7788 to or from anyone else: a forwarded flow that happens to use it.
  EXPECT_FALSE(exempt(rules, {Hook::Prerouting, kIpProtoTcp, addr("192.0.2.10"),
                              addr("198.51.100.10"), 40000, 7788}));
  EXPECT_FALSE(exempt(rules, {Hook::Prerouting, kIpProtoTcp, addr("192.0.2.10"), kLocal,
                              40000, 7788}));
  // UDP on the port between the nodes.
  EXPECT_FALSE(exempt(rules, {Hook::Prerouting, 17, kPeer, kLocal, 40000, 7788}));
  // Packets leaving towards the peer are matched in output only, arriving ones in prerouting.
  EXPECT_FALSE(exempt(rules, {Hook::Prerouting, kIpProtoTcp, kLocal, kPeer, 40000, 7788}));
}

TEST(OwnTraffic, DescribedInNftSyntaxForTheLog) {
  const auto rules = own_traffic_rules(addr("fd00:3::1"), addr("fd00:3::2"), 7788);
  std::vector<std::string> text;
  for (const auto& r : rules) text.push_back(describe(r));
  EXPECT_EQ(text.front(), "prerouting meta l4proto vrrp notrack");
  EXPECT_NE(std::find(text.begin(), text.end(),
                      "output ip6 saddr fd00:3::1 ip6 daddr fd00:3::2 tcp dport 7788 notrack"),
            text.end());
  EXPECT_NE(std::find(text.begin(), text.end(),
                      "prerouting ip6 saddr fd00:3::2 ip6 daddr fd00:3::1 tcp sport 7788 notrack"),
            text.end());
}

}  // namespace
}  // namespace fwha::nft
