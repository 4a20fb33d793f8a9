// Helper expectations: netlink messages <-> ExpectEntry (pure), wire round trips and the
// validation of what a peer sends, and ExpectSync's source/sink behaviour against fakes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "fake_expect.h"
#include "sync/expect_convert.h"
#include "sync/expect_sync.h"
#include "sync/expect_wire.h"

namespace fwha::sync {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

// The expectation the FTP helper creates for `PORT 192,0,2,10,...` rewritten to the WAN VIP:
// the server may connect from any port to VIP:59855, which is NATed back to the client.
ExpectEntry ftp_expectation() {
  ExpectEntry e;
  e.master = {ip("192.0.2.10"), ip("198.51.100.10"), IPPROTO_TCP, 46132, 21};
  e.tuple = {ip("198.51.100.10"), ip("198.51.100.1"), IPPROTO_TCP, 0, 59855};
  e.mask = {ip("255.255.255.255"), ip("255.255.255.255"), IPPROTO_TCP, 0, 0xffff};
  e.timeout_s = 299;
  e.flags = 0;
  std::strcpy(e.helper.data(), "ftp");
  std::strcpy(e.function.data(), "nat-follow-master");
  e.has_nat = true;
  e.nat_dir = 1;
  e.nat = {ip("192.0.2.10"), ip("0.0.0.0"), IPPROTO_TCP, 40001, 0};
  return e;
}

TEST(ExpectConvert, NewRequestParsesBackToTheSameEntry) {
  std::vector<char> buf(kMaxExpectRequestBytes);
  const ExpectEntry e = ftp_expectation();
  nlmsghdr* nlh = build_expect_new(buf.data(), 7, e);
  EXPECT_LE(nlh->nlmsg_len, kMaxExpectRequestBytes);
  EXPECT_EQ(nlh->nlmsg_type, (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW);
  EXPECT_TRUE(nlh->nlmsg_flags & NLM_F_CREATE);
  EXPECT_FALSE(nlh->nlmsg_flags & NLM_F_EXCL);
  ExpectEntry back;
  ASSERT_TRUE(parse_expectation(nlh, back));
  EXPECT_EQ(back, e);
}

TEST(ExpectConvert, Ipv6WithoutNatRoundTrips) {
  ExpectEntry e;
  e.master = {ip("fd00:1::10"), ip("fd00:2::10"), IPPROTO_TCP, 40000, 21};
  e.tuple = {ip("fd00:2::10"), ip("fd00:1::10"), IPPROTO_TCP, 0, 50000};
  e.mask = {ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), IPPROTO_TCP, 0, 0xffff};
  e.timeout_s = 10;
  std::vector<char> buf(kMaxExpectRequestBytes);
  ExpectEntry back;
  ASSERT_TRUE(parse_expectation(build_expect_new(buf.data(), 1, e), back));
  EXPECT_EQ(back, e);
}

TEST(ExpectConvert, TruncatedOrForeignMessagesAreNotParsed) {
  std::vector<char> buf(kMaxExpectRequestBytes);
  nlmsghdr* nlh = build_expect_delete(buf.data(), 1, ftp_expectation());
  ExpectEntry out;
  EXPECT_FALSE(parse_expectation(nlh, out));  // a delete has no master or mask
  nlh->nlmsg_len = sizeof(nlmsghdr);           // no nfgenmsg
  EXPECT_FALSE(parse_expectation(nlh, out));
}

TEST(ExpectWire, RoundTripKeepsEveryField) {
  for (auto kind : {ExpectChangeKind::New, ExpectChangeKind::Destroy}) {
    const ExpectChange c{kind, ftp_expectation()};
    wire::ExpectChange w;
    to_wire(c, &w);
    wire::ExpectChange parsed;
    ASSERT_TRUE(parsed.ParseFromString(w.SerializeAsString()));
    std::string error;
    auto back = from_wire(parsed, error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(*back, c);
  }
}

TEST(ExpectWire, InvalidFieldsAreRejected) {
  using Mutate = void (*)(wire::ExpectChange&);
  const Mutate bad[] = {
      [](wire::ExpectChange& w) { w.set_kind(wire::ExpectChange::KIND_UNSPECIFIED); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->clear_mask(); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->mutable_tuple()->set_src("abc"); },
      [](wire::ExpectChange& w) {
        w.mutable_expectation()->mutable_tuple()->set_src(std::string(16, '\1'));
        w.mutable_expectation()->mutable_tuple()->set_dst(std::string(16, '\1'));
      },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_flags(4); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_nat_dir(2); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_expect_class(9); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_timeout_s(1u << 31); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_zone(70000); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_helper("f\ntp"); },
      [](wire::ExpectChange& w) { w.mutable_expectation()->set_function(std::string(40, 'a')); },
      [](wire::ExpectChange& w) {
        w.mutable_expectation()->mutable_nat()->set_src(std::string(16, '\1'));
        w.mutable_expectation()->mutable_nat()->set_dst(std::string(16, '\1'));
      },
  };
  for (size_t i = 0; i < std::size(bad); ++i) {
    wire::ExpectChange w;
    to_wire(ExpectChange{ExpectChangeKind::New, ftp_expectation()}, &w);
    bad[i](w);
    std::string error;
    EXPECT_FALSE(from_wire(w, error)) << "case " << i;
    EXPECT_FALSE(error.empty()) << "case " << i;
  }
}

// --- ExpectSync ------------------------------------------------------------------------------

struct Pair {
  Clock::time_point now{};
  test::FakeExpectTable master_table, backup_table;
  test::RecordingTransport to_backup;
  ExpectSync source{master_table, master_table, to_backup, [this] { return now; }};
  test::RecordingTransport to_master;
  ExpectSync sink{backup_table, backup_table, to_master, [this] { return now; }};

  Pair() { source.set_source(true); }
  void deliver() {
    for (const auto& f : to_backup.frames) sink.on_batch(f.expect_batch());
    to_backup.frames.clear();
  }
};

TEST(ExpectSync, EventsReachTheBackupKernel) {
  Pair p;
  const ExpectEntry e = ftp_expectation();
  p.backup_table.masters.push_back(e.master);
  p.source.on_local_change({ExpectChangeKind::New, e});
  p.source.flush();
  p.deliver();
  ASSERT_EQ(p.backup_table.entries.size(), 1u);
  EXPECT_EQ(p.backup_table.entries[0], e);
  p.source.on_local_change({ExpectChangeKind::Destroy, e});
  p.source.flush();
  p.deliver();
  EXPECT_TRUE(p.backup_table.entries.empty());
  EXPECT_EQ(p.sink.counters().applied, 2u);
}

TEST(ExpectSync, ConnectSendsASnapshot) {
  Pair p;
  const ExpectEntry e = ftp_expectation();
  p.master_table.masters.push_back(e.master);
  ASSERT_FALSE(p.master_table.apply({ExpectChangeKind::New, e}));
  p.backup_table.masters.push_back(e.master);
  p.source.on_connected();
  p.deliver();
  EXPECT_EQ(p.backup_table.entries.size(), 1u);
  EXPECT_EQ(p.source.counters().snapshots, 1u);
}

TEST(ExpectSync, WaitsForItsMasterThenGivesUp) {
  Pair p;
  const ExpectEntry e = ftp_expectation();  // timeout 299 s
  p.source.on_local_change({ExpectChangeKind::New, e});
  p.source.flush();
  p.deliver();  // the master connection is not on the Backup yet
  EXPECT_TRUE(p.backup_table.entries.empty());
  EXPECT_EQ(p.sink.counters().waiting, 1u);
  EXPECT_EQ(p.sink.counters().apply_errors, 0u);
  p.backup_table.masters.push_back(e.master);  // the reconciliation round brought it
  p.now += std::chrono::seconds(1);
  p.sink.tick();
  EXPECT_EQ(p.backup_table.entries.size(), 1u);
  EXPECT_EQ(p.sink.counters().waiting, 0u);

  ExpectEntry other = e;
  other.tuple.dst_port = 1;
  other.master.src_port = 1;  // a master that never comes
  p.source.on_local_change({ExpectChangeKind::New, other});
  p.source.flush();
  p.deliver();
  p.now += std::chrono::seconds(300);
  p.sink.tick();
  EXPECT_EQ(p.sink.counters().waiting, 0u);
  EXPECT_EQ(p.sink.counters().expired_waiting, 1u);
}

TEST(ExpectSync, InvalidChangesAreCountedNotApplied) {
  Pair p;
  wire::ExpectBatch batch;
  to_wire(ExpectChange{ExpectChangeKind::New, ftp_expectation()}, batch.add_changes());
  batch.mutable_changes(0)->mutable_expectation()->set_flags(0xff);
  p.sink.on_batch(batch);
  EXPECT_EQ(p.sink.counters().rejected, 1u);
  EXPECT_EQ(p.backup_table.applied, 0u);
}

TEST(ExpectSync, NewExpectationRefreshesItsMasterLater) {
  Pair p;
  std::vector<FlowTuple> refreshed;
  p.source.set_refresh_master(
      [&](const FlowTuple& t, uint16_t) { refreshed.push_back(t); });
  p.source.on_local_change({ExpectChangeKind::New, ftp_expectation()});
  p.source.tick();
  EXPECT_TRUE(refreshed.empty());  // the helper may still be rewriting the packet
  p.now += std::chrono::milliseconds(50);
  p.source.tick();
  ASSERT_EQ(refreshed.size(), 1u);
  EXPECT_EQ(refreshed[0], ftp_expectation().master);
}

TEST(ExpectSync, SinkIgnoresBatchesWhileSource) {
  Pair p;
  wire::ExpectBatch batch;
  to_wire(ExpectChange{ExpectChangeKind::New, ftp_expectation()}, batch.add_changes());
  p.source.on_batch(batch);
  EXPECT_EQ(p.master_table.applied, 0u);
}

}  // namespace
}  // namespace fwha::sync
