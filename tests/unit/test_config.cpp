// The config parser: a good file yields every value; each kind of mistake is reported with
// the key, the line and what was expected.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

using fwha::config::Config;
using fwha::config::Error;
using fwha::config::parse;

namespace {

const std::string kGood = R"(# fw1
[node]
name = "fw1"
control_socket = "/run/fwha/test.sock"

[peer]
name = "fw2"

[sync]
local_address = "203.0.113.1"
peer_address = "203.0.113.2"
port = 7788

[group]
name = "gw"
vrid = 51
priority = 150
advert_interval_cs = 10
preempt = true

[[group.interface]]
name = "lan0"
peer_address = "192.0.2.3"
vips = ["192.0.2.1/24"]

[[group.interface]]
name = "wan0"
peer_address = "198.51.100.3"
vips = ["198.51.100.1/24", "198.51.100.4/24"]
)";

Error expect_error(const std::string& text) {
  auto r = parse(text, "fwha.conf");
  EXPECT_TRUE(std::holds_alternative<Error>(r)) << "expected an error for:\n" << text;
  if (auto* e = std::get_if<Error>(&r)) return *e;
  return {};
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(Config, GoodFileYieldsEveryValue) {
  auto r = parse(kGood, "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  const auto& c = std::get<Config>(r);
  EXPECT_EQ(c.node_name, "fw1");
  EXPECT_EQ(c.control_socket, "/run/fwha/test.sock");
  EXPECT_EQ(c.peer_name, "fw2");
  EXPECT_EQ(c.sync.local_address.to_string(), "203.0.113.1");
  EXPECT_EQ(c.sync.peer_address.to_string(), "203.0.113.2");
  EXPECT_EQ(c.sync.port, 7788);
  EXPECT_TRUE(c.sync.conntrack);
  EXPECT_EQ(c.group.name, "gw");
  EXPECT_EQ(c.group.vrid, 51);
  EXPECT_EQ(c.group.priority, 150);
  EXPECT_EQ(c.group.advert_interval_cs, 10);
  EXPECT_TRUE(c.group.preempt);
  ASSERT_EQ(c.group.interfaces.size(), 2u);
  EXPECT_EQ(c.group.interfaces[0].name, "lan0");
  EXPECT_EQ(c.group.interfaces[0].peer_address.to_string(), "192.0.2.3");
  ASSERT_EQ(c.group.interfaces[1].vips.size(), 2u);
  EXPECT_EQ(c.group.interfaces[1].vips[1].to_string(), "198.51.100.4/24");
}

TEST(Config, DefaultsApplyWhenOptionalKeysAreAbsent) {
  std::string text = replace(kGood, "preempt = true\n", "");
  text = replace(text, "advert_interval_cs = 10\n", "");
  text = replace(text, "control_socket = \"/run/fwha/test.sock\"\n", "");
  auto r = parse(text, "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  const auto& c = std::get<Config>(r);
  EXPECT_FALSE(c.group.preempt);  // no preemption by default (DESIGN.md)
  EXPECT_EQ(c.group.advert_interval_cs, 1);
  EXPECT_EQ(c.control_socket, fwha::config::kDefaultControlSocket);
  EXPECT_EQ(c.realtime_priority, 50);
  EXPECT_EQ(c.election_cpu, -1);  // the highest CPU fwhad may run on
  EXPECT_TRUE(c.notrack_own_traffic);  // a full conntrack table must not silence VRRP
  EXPECT_EQ(c.sync.event_coalesce_us, 300u);
  EXPECT_EQ(c.sync.event_hold_entries, 2u);  // pairs of a dense stream, not the window
  EXPECT_FALSE(c.group.virtual_mac);  // VIPs on the interface itself unless asked
  EXPECT_TRUE(c.group.track_next_hops.empty());
  EXPECT_EQ(c.group.track_interval_ms, 1000u);
  EXPECT_EQ(c.group.track_misses, 3u);
}

TEST(Config, TrackedNextHops) {
  auto r = parse(replace(kGood, "preempt = true\n",
                         "preempt = true\ntrack_next_hops = [\"198.51.100.254\", \"2001:db8::1\"]\n"
                         "track_interval_ms = 200\ntrack_misses = 2\n"),
                 "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  const auto& g = std::get<Config>(r).group;
  ASSERT_EQ(g.track_next_hops.size(), 2u);
  EXPECT_EQ(g.track_next_hops[1].to_string(), "2001:db8::1");
  EXPECT_EQ(g.track_interval_ms, 200u);
  EXPECT_EQ(g.track_misses, 2u);
  auto e = expect_error(replace(kGood, "preempt = true\n",
                                "preempt = true\ntrack_next_hops = [\"198.51.100.999\"]\n"));
  EXPECT_EQ(e.key, "group.track_next_hops");
  EXPECT_NE(e.message.find("198.51.100.999"), std::string::npos) << e.message;
  e = expect_error(replace(kGood, "preempt = true\n",
                           "preempt = true\ntrack_next_hops = [\"fe80::1\"]\n"));
  EXPECT_EQ(e.key, "group.track_next_hops");
  e = expect_error(replace(kGood, "preempt = true\n", "preempt = true\ntrack_interval_ms = 5\n"));
  EXPECT_EQ(e.key, "group.track_interval_ms");
  for (const char* bad : {"224.0.0.18", "127.0.0.1", "0.0.0.0", "169.254.1.1", "ff02::1", "::1",
                          "::", "::ffff:198.51.100.254"}) {
    e = expect_error(replace(kGood, "preempt = true\n", std::string("preempt = true\n") +
                                                          "track_next_hops = [\"" + bad + "\"]\n"));
    EXPECT_EQ(e.key, "group.track_next_hops") << bad;
    EXPECT_NE(e.message.find(bad), std::string::npos) << e.message;
  }
  e = expect_error(replace(kGood, "preempt = true\n",
                           "preempt = true\ntrack_next_hops = [\"198.51.100.254\", "
                           "\"198.51.100.254\"]\n"));
  EXPECT_NE(e.message.find("listed twice"), std::string::npos) << e.message;
}

TEST(Config, VirtualMacIsABoolean) {
  auto r = parse(replace(kGood, "preempt = true\n", "preempt = true\nvirtual_mac = true\n"),
                 "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  EXPECT_TRUE(std::get<Config>(r).group.virtual_mac);
  auto e = expect_error(replace(kGood, "preempt = true\n", "preempt = true\nvirtual_mac = 1\n"));
  EXPECT_EQ(e.key, "group.virtual_mac");
  EXPECT_NE(e.message.find("true or false"), std::string::npos) << e.message;
}

TEST(Config, Ipv6VipsMoveWithTheGroup) {
  auto r = parse(replace(kGood, "vips = [\"192.0.2.1/24\"]", "vips = [\"192.0.2.1/24\", \"fd00:1::1/64\"]"),
                 "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  const auto& vips = std::get<Config>(r).group.interfaces[0].vips;
  ASSERT_EQ(vips.size(), 2u);
  EXPECT_EQ(vips[1].to_string(), "fd00:1::1/64");
}

// An IPv6 link-local peer_address makes that interface's adverts IPv6 (docs/running.md).
TEST(Config, Ipv6LinkLocalPeerAddressIsAccepted) {
  auto r = parse(replace(kGood, "peer_address = \"192.0.2.3\"", "peer_address = \"fe80::3\""),
                 "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  const auto& c = std::get<Config>(r);
  EXPECT_EQ(c.group.interfaces[0].peer_address.to_string(), "fe80::3");
  EXPECT_EQ(c.group.interfaces[1].peer_address.to_string(), "198.51.100.3");  // IPv4 as before
}

TEST(Config, Ipv6PeerAddressMustBeLinkLocal) {
  auto e = expect_error(replace(kGood, "\"192.0.2.3\"", "\"fd00:1::3\""));
  EXPECT_EQ(e.key, "group.interface[0].peer_address");
  EXPECT_EQ(e.line, 23);
  EXPECT_NE(e.message.find("link-local"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("fd00:1::3"), std::string::npos) << e.message;
  EXPECT_EQ(e.to_string().rfind("fwha.conf:23: group.interface[0].peer_address: ", 0), 0u)
      << e.to_string();
  // fec0::/10 (deprecated site-local) is next to fe80::/10 but not link-local.
  e = expect_error(replace(kGood, "\"198.51.100.3\"", "\"fec0::3\""));
  EXPECT_EQ(e.key, "group.interface[1].peer_address");
  // A scope suffix is not an address: the interface already is the scope.
  e = expect_error(replace(kGood, "\"192.0.2.3\"", "\"fe80::3%lan0\""));
  EXPECT_EQ(e.key, "group.interface[0].peer_address");
}

TEST(Config, TypoInKeyNamesKeyAndLine) {
  auto e = expect_error(replace(kGood, "priority = 150", "prority = 150"));
  EXPECT_EQ(e.key, "group.prority");
  EXPECT_EQ(e.line, 17);
  EXPECT_NE(e.message.find("unknown key"), std::string::npos);
  EXPECT_NE(e.message.find("priority"), std::string::npos) << "lists the expected keys";
  EXPECT_EQ(e.to_string().rfind("fwha.conf:17: group.prority: unknown key", 0), 0u)
      << e.to_string();
}

TEST(Config, UnknownTableIsAnError) {
  auto e = expect_error(kGood + "\n[grup]\nname = \"x\"\n");
  EXPECT_EQ(e.key, "grup");
}

TEST(Config, OutOfRangeValuesSayWhatIsExpected) {
  auto e = expect_error(replace(kGood, "vrid = 51", "vrid = 300"));
  EXPECT_EQ(e.key, "group.vrid");
  EXPECT_EQ(e.line, 16);
  EXPECT_NE(e.message.find("1..255"), std::string::npos);
  EXPECT_NE(e.message.find("300"), std::string::npos);

  e = expect_error(replace(kGood, "priority = 150", "priority = 255"));
  EXPECT_EQ(e.key, "group.priority");
  e = expect_error(replace(kGood, "advert_interval_cs = 10", "advert_interval_cs = 0"));
  EXPECT_EQ(e.key, "group.advert_interval_cs");
  e = expect_error(replace(kGood, "port = 7788", "port = 70000"));
  EXPECT_EQ(e.key, "sync.port");
  e = expect_error(replace(kGood, "name = \"fw1\"\n", "name = \"fw1\"\nrealtime_priority = 120\n"));
  EXPECT_EQ(e.key, "node.realtime_priority");
  EXPECT_NE(e.message.find("0..99"), std::string::npos);
  e = expect_error(replace(kGood, "name = \"fw1\"\n", "name = \"fw1\"\nelection_cpu = -2\n"));
  EXPECT_EQ(e.key, "node.election_cpu");
  {
    auto r = parse(replace(kGood, "name = \"fw1\"\n", "name = \"fw1\"\nelection_cpu = 0\n"),
                   "fwha.conf");
    ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
    EXPECT_EQ(std::get<Config>(r).election_cpu, 0);
  }
  e = expect_error(replace(kGood, "[sync]\n", "[sync]\nevent_coalesce_us = -1\n"));
  EXPECT_EQ(e.key, "sync.event_coalesce_us");
  e = expect_error(replace(kGood, "[sync]\n", "[sync]\nevent_hold_entries = 65\n"));
  EXPECT_EQ(e.key, "sync.event_hold_entries");
  {
    auto r = parse(replace(kGood, "[sync]\n", "[sync]\nevent_hold_entries = 4\n"), "fwha.conf");
    ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
    EXPECT_EQ(std::get<Config>(r).sync.event_hold_entries, 4u);  // not the default (2)
  }
  e = expect_error(replace(kGood, "preempt = true\n", "preempt = true\npreempt_delay_s = 4000\n"));
  EXPECT_EQ(e.key, "group.preempt_delay_s");
}

TEST(Config, NotrackOwnTrafficIsABooleanOfTheNode) {
  auto r = parse(replace(kGood, "name = \"fw1\"\n", "name = \"fw1\"\nnotrack_own_traffic = false\n"),
                 "fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  EXPECT_FALSE(std::get<Config>(r).notrack_own_traffic);
  auto e = expect_error(
      replace(kGood, "name = \"fw1\"\n", "name = \"fw1\"\nnotrack_own_traffic = \"no\"\n"));
  EXPECT_EQ(e.key, "node.notrack_own_traffic");
  EXPECT_NE(e.message.find("true or false"), std::string::npos) << e.message;
}

TEST(Config, WrongTypesAreErrors) {
  auto e = expect_error(replace(kGood, "preempt = true", "preempt = \"yes\""));
  EXPECT_EQ(e.key, "group.preempt");
  EXPECT_NE(e.message.find("true or false"), std::string::npos);
  e = expect_error(replace(kGood, "vrid = 51", "vrid = \"51\""));
  EXPECT_EQ(e.key, "group.vrid");
}

TEST(Config, BadAddressesAreErrors) {
  auto e = expect_error(replace(kGood, "\"203.0.113.2\"", "\"203.0.113.999\""));
  EXPECT_EQ(e.key, "sync.peer_address");
  EXPECT_NE(e.message.find("203.0.113.999"), std::string::npos);
  e = expect_error(replace(kGood, "\"192.0.2.1/24\"", "\"192.0.2.1/33\""));
  EXPECT_EQ(e.key, "group.interface[0].vips");
  e = expect_error(replace(kGood, "\"203.0.113.2\"", "\"203.0.113.1\""));
  EXPECT_EQ(e.key, "sync.peer_address");
  EXPECT_NE(e.message.find("differ"), std::string::npos);
}

TEST(Config, MissingRequiredKeysAreNamed) {
  auto e = expect_error(replace(kGood, "vrid = 51\n", ""));
  EXPECT_EQ(e.key, "group.vrid");
  EXPECT_NE(e.message.find("missing"), std::string::npos);
  e = expect_error(replace(kGood, "[peer]\nname = \"fw2\"\n", ""));
  EXPECT_EQ(e.key, "peer");
}

TEST(Config, DuplicateVipOrInterfaceIsAnError) {
  auto e = expect_error(replace(kGood, "\"198.51.100.4/24\"", "\"192.0.2.1/24\""));
  EXPECT_EQ(e.key, "group.interface[1].vips");
  EXPECT_NE(e.message.find("twice"), std::string::npos);
  e = expect_error(replace(kGood, "name = \"wan0\"", "name = \"lan0\""));
  EXPECT_EQ(e.key, "group.interface[1].name");
}

TEST(Config, BadNamesAreErrors) {
  auto e = expect_error(replace(kGood, "name = \"fw1\"", "name = \"fw 1\""));
  EXPECT_EQ(e.key, "node.name");
  e = expect_error(replace(kGood, "name = \"lan0\"", "name = \"averyveryverylongname\""));
  EXPECT_EQ(e.key, "group.interface[0].name");
  e = expect_error(replace(kGood, "name = \"fw2\"", "name = \"fw1\""));
  EXPECT_EQ(e.key, "peer.name");
}

TEST(Config, TomlSyntaxErrorHasLine) {
  auto e = expect_error(replace(kGood, "port = 7788", "port = = 7788"));
  EXPECT_EQ(e.line, 12);
  EXPECT_NE(e.message.find("TOML syntax error"), std::string::npos);
}

TEST(Config, MissingFileIsAnError) {
  auto r = fwha::config::load("/nonexistent/fwha.conf");
  ASSERT_TRUE(std::holds_alternative<Error>(r));
  EXPECT_NE(std::get<Error>(r).to_string().find("cannot open"), std::string::npos);
}

}  // namespace
