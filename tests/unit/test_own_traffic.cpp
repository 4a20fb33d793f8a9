// Which packets of the node's own bypass conntrack (nft/own_traffic.h), and the expressions
// the kernel gets for them (nft/notrack_rule.h). The kernel side, the rules matching with
// full tables, is proven by tests/lab/full_table.py (IPv4 sync link).
#include "nft/own_traffic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>

#include "nft/notrack_rule.h"

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
  EXPECT_TRUE(exempt(rules, {Hook::Prerouting, kIpProtoVrrp, addr("fe80::3"), addr("ff02::12")}));
}

TEST(OwnTraffic, VrrpToOtherDestinationsStaysTracked) {
  const auto rules = own_traffic_rules(kLocal, kPeer, 7788);
  // fwhad sends to the multicast groups only; unicast VRRP passing through (forwarded) or
  // aimed at us keeps its conntrack state, so `ct state` rules still see it.
  EXPECT_FALSE(exempt(rules, {Hook::Prerouting, kIpProtoVrrp, addr("192.0.2.3"),
                              addr("198.51.100.7")}));
  EXPECT_FALSE(exempt(rules, {Hook::Prerouting, kIpProtoVrrp, addr("fd00:1::3"),
                              addr("fd00:2::7")}));
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
  EXPECT_EQ(text.front(), "prerouting ip daddr 224.0.0.18 meta l4proto vrrp notrack");
  EXPECT_EQ(text[1], "prerouting ip6 daddr ff02::12 meta l4proto vrrp notrack");
  EXPECT_NE(std::find(text.begin(), text.end(),
                      "output ip6 saddr fd00:3::1 ip6 daddr fd00:3::2 tcp dport 7788 notrack"),
            text.end());
  EXPECT_NE(std::find(text.begin(), text.end(),
                      "prerouting ip6 saddr fd00:3::2 ip6 daddr fd00:3::1 tcp sport 7788 notrack"),
            text.end());
}

std::string render(const NotrackRule& spec) {
  const NftnlRule r = build_rule(spec);
  if (!r) return "(no rule)";
  std::array<char, 4096> buf{};
  nftnl_rule_snprintf(buf.data(), buf.size(), r.get(), NFTNL_OUTPUT_DEFAULT, 0);
  return buf.data();
}

// The expected texts are what nft 1.0.6 itself sends for the same rules, recorded with
// `nft --debug=netlink add rule inet t prerouting ...` (cmp data as host-order words: x86).
TEST(NotrackRule, Ipv4SyncLinkAsNftEmitsIt) {
  EXPECT_EQ(render({.hook = Hook::Prerouting, .l4proto = kIpProtoTcp, .src = kPeer,
                    .dst = kLocal, .sport = 7788}),
            "inet fwha prerouting\n"
            "  [ meta load nfproto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00000002 ]\n"
            "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x027100cb ]\n"
            "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x017100cb ]\n"
            "  [ meta load l4proto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00000006 ]\n"
            "  [ payload load 2b @ transport header + 0 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00006c1e ]\n"
            "  [ notrack ]\n");
}

TEST(NotrackRule, Ipv6SyncLinkAsNftEmitsIt) {
  EXPECT_EQ(render({.hook = Hook::Prerouting, .l4proto = kIpProtoTcp, .src = addr("fd00:3::2"),
                    .dst = addr("fd00:3::1"), .dport = 7788}),
            "inet fwha prerouting\n"
            "  [ meta load nfproto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x0000000a ]\n"
            "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x030000fd 0x00000000 0x00000000 0x02000000 ]\n"
            "  [ payload load 16b @ network header + 24 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x030000fd 0x00000000 0x00000000 0x01000000 ]\n"
            "  [ meta load l4proto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00000006 ]\n"
            "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00006c1e ]\n"
            "  [ notrack ]\n");
}

TEST(NotrackRule, VrrpAdvertsAsNftEmitsIt) {
  EXPECT_EQ(render(own_traffic_rules(kLocal, kPeer, 7788).front()),
            "inet fwha prerouting\n"
            "  [ meta load nfproto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00000002 ]\n"
            "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x120000e0 ]\n"
            "  [ meta load l4proto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00000070 ]\n"
            "  [ notrack ]\n");
}

}  // namespace
}  // namespace fwha::nft
