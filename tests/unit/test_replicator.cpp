// Replication logic with fake kernel and fake link: what the Master sends, what the Backup
// writes into its table, bulk sync on connect, filtering of the node's own flows, rejection
// of invalid input, and the handover barrier. Two replicators are also wired back to back
// through the real frame codec.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "flow_samples.h"
#include "sync/flow_wire.h"
#include "sync/frame_codec.h"
#include "sync/replicator.h"

namespace fwha::sync {
namespace {

using ::testing::ElementsAre;

class FakeTable : public ConntrackWriter, public ConntrackReader {
 public:
  std::error_code apply(const FlowChange& c) override {
    applied.push_back(c);
    if (fail_next) {
      fail_next = false;
      return std::make_error_code(std::errc::invalid_argument);
    }
    return {};
  }
  std::error_code dump(const std::function<void(const FlowEntry&)>& visit) override {
    for (const auto& e : entries) visit(e);
    return {};
  }
  std::vector<FlowChange> applied;
  std::vector<FlowEntry> entries;
  bool fail_next = false;
};

class FakeLink : public FrameTransport {
 public:
  bool connected() const override { return up; }
  bool send(const wire::Frame& f) override {
    if (!up) return false;
    sent.push_back(f);
    return true;
  }
  std::vector<wire::Frame::BodyCase> kinds() const {
    std::vector<wire::Frame::BodyCase> out;
    for (const auto& f : sent) out.push_back(f.body_case());
    return out;
  }
  bool up = true;
  std::vector<wire::Frame> sent;
};

wire::Frame hello_from(const std::string& node, uint32_t version = kProtocolVersion) {
  wire::Frame f;
  f.mutable_hello()->set_protocol_version(version);
  f.mutable_hello()->set_node(node);
  return f;
}

struct Fixture : ::testing::Test {
  FakeTable table;
  FakeLink link;
  Replicator rep{{"fw1", "fw2", 2}, table, table, link};

  void connect() {
    rep.on_connected();
    ASSERT_TRUE(rep.on_frame(hello_from("fw2")));
  }
};

using ReplicatorTest = Fixture;

TEST_F(ReplicatorTest, ConnectSendsHelloAndSinkSendsNothingElse) {
  connect();
  EXPECT_THAT(link.kinds(), ElementsAre(wire::Frame::kHello));
  EXPECT_EQ(link.sent[0].hello().node(), "fw1");
  EXPECT_TRUE(rep.peer_hello_seen());
}

TEST_F(ReplicatorTest, SourceSendsBulkOnConnectInBatches) {
  table.entries = {test::snat_tcp_flow(1), test::snat_tcp_flow(2), test::snat_tcp_flow(3)};
  rep.set_role(Replicator::Role::Source);
  connect();
  EXPECT_THAT(link.kinds(), ElementsAre(wire::Frame::kHello, wire::Frame::kBulkBegin,
                                        wire::Frame::kFlows, wire::Frame::kFlows,
                                        wire::Frame::kBulkEnd));
  EXPECT_EQ(link.sent[2].flows().changes_size(), 2);  // max_changes_per_frame = 2
  EXPECT_EQ(link.sent[3].flows().changes_size(), 1);
  EXPECT_EQ(link.sent[4].bulk_end().entries(), 3u);
  EXPECT_EQ(link.sent[3].flows().seq(), link.sent[2].flows().seq() + 1);
  EXPECT_EQ(rep.counters().entries_sent, 3u);
  EXPECT_EQ(rep.counters().bulk_syncs_sent, 1u);
}

TEST_F(ReplicatorTest, BecomingSourceWhileConnectedSendsBulk) {
  table.entries = {test::snat_tcp_flow(1)};
  connect();
  rep.set_role(Replicator::Role::Source);
  EXPECT_THAT(link.kinds(), ElementsAre(wire::Frame::kHello, wire::Frame::kBulkBegin,
                                        wire::Frame::kFlows, wire::Frame::kBulkEnd));
}

TEST_F(ReplicatorTest, LocalChangesAreBatchedUntilFlush) {
  rep.set_role(Replicator::Role::Source);
  connect();
  link.sent.clear();
  rep.on_local_change({FlowChangeKind::New, test::snat_tcp_flow(1)});
  EXPECT_TRUE(link.sent.empty());
  rep.on_local_change({FlowChangeKind::Update, test::snat_tcp_flow(1)});  // batch full
  rep.on_local_change({FlowChangeKind::Destroy, test::snat_tcp_flow(1)});
  rep.flush();
  ASSERT_EQ(link.sent.size(), 2u);
  EXPECT_EQ(link.sent[0].flows().changes(0).kind(), wire::FlowChange::NEW);
  EXPECT_EQ(link.sent[0].flows().changes(1).kind(), wire::FlowChange::UPDATE);
  EXPECT_EQ(link.sent[1].flows().changes(0).kind(), wire::FlowChange::DESTROY);
}

TEST_F(ReplicatorTest, SinkIgnoresLocalChanges) {
  connect();
  link.sent.clear();
  rep.on_local_change({FlowChangeKind::New, test::snat_tcp_flow(1)});
  rep.flush();
  EXPECT_TRUE(link.sent.empty());
}

TEST_F(ReplicatorTest, OwnFlowsAndVrrpAreFiltered) {
  rep.set_filter(LocalFilter{{*IpAddress::parse("203.0.113.1")}});
  table.entries = {test::snat_tcp_flow(1)};
  FlowEntry sync_flow = test::snat_tcp_flow(2);
  sync_flow.original.src = *IpAddress::parse("203.0.113.1");
  FlowEntry vrrp = test::snat_tcp_flow(3);
  vrrp.original.l4proto = vrrp.reply.l4proto = 112;
  table.entries.push_back(sync_flow);
  table.entries.push_back(vrrp);
  rep.set_role(Replicator::Role::Source);
  connect();
  EXPECT_EQ(rep.counters().entries_sent, 1u);
  EXPECT_EQ(rep.counters().entries_filtered, 0u);  // bulk filtering is not counted per entry
  rep.on_local_change({FlowChangeKind::New, sync_flow});
  EXPECT_EQ(rep.counters().entries_filtered, 1u);
}

TEST_F(ReplicatorTest, OverrunResendsTheWholeTable) {
  table.entries = {test::snat_tcp_flow(1)};
  rep.set_role(Replicator::Role::Source);
  connect();
  link.sent.clear();
  rep.on_overrun();
  EXPECT_EQ(rep.counters().overruns, 1u);
  EXPECT_THAT(link.kinds(), ElementsAre(wire::Frame::kBulkBegin, wire::Frame::kFlows,
                                        wire::Frame::kBulkEnd));
}

TEST_F(ReplicatorTest, ReplicationOffSendsNoEntries) {
  Replicator off{{"fw1", "fw2", 2, false}, table, table, link};
  table.entries = {test::snat_tcp_flow(1)};
  off.set_role(Replicator::Role::Source);
  off.on_connected();
  ASSERT_TRUE(off.on_frame(hello_from("fw2")));
  off.on_local_change({FlowChangeKind::New, test::snat_tcp_flow(1)});
  off.flush();
  EXPECT_THAT(link.kinds(), ElementsAre(wire::Frame::kHello));
}

wire::Frame batch_of(uint64_t seq, const std::vector<FlowChange>& changes) {
  wire::Frame f;
  f.mutable_flows()->set_seq(seq);
  for (const auto& c : changes) to_wire(c, f.mutable_flows()->add_changes());
  return f;
}

TEST_F(ReplicatorTest, SinkAppliesValidChangesAndRejectsInvalidOnes) {
  connect();
  wire::Frame f = batch_of(1, {{FlowChangeKind::New, test::snat_tcp_flow(1)},
                               {FlowChangeKind::New, test::snat_tcp_flow(2)},
                               {FlowChangeKind::Destroy, test::icmpv6_flow()}});
  f.mutable_flows()->mutable_changes(1)->mutable_flow()->mutable_original()->set_src("bad");
  EXPECT_TRUE(rep.on_frame(f));
  ASSERT_EQ(table.applied.size(), 2u);
  EXPECT_EQ(table.applied[0], (FlowChange{FlowChangeKind::New, test::snat_tcp_flow(1)}));
  EXPECT_EQ(table.applied[1], (FlowChange{FlowChangeKind::Destroy, test::icmpv6_flow()}));
  EXPECT_EQ(rep.counters().entries_received, 3u);
  EXPECT_EQ(rep.counters().entries_applied, 2u);
  EXPECT_EQ(rep.counters().changes_rejected, 1u);
}

TEST_F(ReplicatorTest, KernelRefusalIsCountedAndTheRestApplied) {
  connect();
  table.fail_next = true;
  EXPECT_TRUE(rep.on_frame(batch_of(1, {{FlowChangeKind::New, test::snat_tcp_flow(1)},
                                        {FlowChangeKind::New, test::snat_tcp_flow(2)}})));
  EXPECT_EQ(rep.counters().apply_errors, 1u);
  EXPECT_EQ(rep.counters().entries_applied, 1u);
}

TEST_F(ReplicatorTest, SequenceGapIsCounted) {
  connect();
  rep.on_frame(batch_of(5, {}));
  rep.on_frame(batch_of(6, {}));
  EXPECT_EQ(rep.counters().sequence_gaps, 0u);
  rep.on_frame(batch_of(9, {}));
  EXPECT_EQ(rep.counters().sequence_gaps, 1u);
}

TEST_F(ReplicatorTest, SourceDoesNotApplyPeerFlows) {
  rep.set_role(Replicator::Role::Source);
  connect();
  rep.on_frame(batch_of(1, {{FlowChangeKind::New, test::snat_tcp_flow(1)}}));
  EXPECT_TRUE(table.applied.empty());
}

TEST_F(ReplicatorTest, WrongPeerOrVersionOrFrameBeforeHelloDisconnects) {
  rep.on_connected();
  EXPECT_FALSE(rep.on_frame(batch_of(1, {})));  // before hello
  EXPECT_EQ(rep.counters().frames_rejected, 1u);
  rep.on_connected();
  EXPECT_FALSE(rep.on_frame(hello_from("intruder")));
  rep.on_connected();
  EXPECT_FALSE(rep.on_frame(hello_from("fw2", kProtocolVersion + 1)));
  EXPECT_FALSE(rep.peer_hello_seen());
}

TEST_F(ReplicatorTest, UnknownFrameTypeIsSkipped) {
  connect();
  EXPECT_TRUE(rep.on_frame(wire::Frame{}));
  EXPECT_EQ(rep.counters().unknown_frames, 1u);
}

TEST_F(ReplicatorTest, BarrierIsAcknowledgedAndCompletesTheHandover) {
  connect();
  wire::Frame b;
  b.mutable_barrier()->set_token(42);
  link.sent.clear();
  rep.on_frame(b);
  ASSERT_THAT(link.kinds(), ElementsAre(wire::Frame::kBarrierAck));
  EXPECT_EQ(link.sent[0].barrier_ack().token(), 42u);

  bool done = false;
  link.sent.clear();
  ASSERT_TRUE(rep.request_barrier([&] { done = true; }));
  ASSERT_THAT(link.kinds(), ElementsAre(wire::Frame::kBarrier));
  wire::Frame wrong;
  wrong.mutable_barrier_ack()->set_token(link.sent[0].barrier().token() + 1);
  rep.on_frame(wrong);
  EXPECT_FALSE(done);
  wire::Frame ack;
  ack.mutable_barrier_ack()->set_token(link.sent[0].barrier().token());
  rep.on_frame(ack);
  EXPECT_TRUE(done);
}

TEST_F(ReplicatorTest, BarrierIsRefusedWhenTheLinkIsDown) {
  link.up = false;
  EXPECT_FALSE(rep.request_barrier([] {}));
}

// Two replicators back to back through the real frame codec: the Backup's table ends up with
// exactly what the Master had and what changed after.
class Pipe : public FrameTransport {
 public:
  bool connected() const override { return true; }
  bool send(const wire::Frame& f) override {
    append_frame(f, bytes);
    return true;
  }
  void deliver(Replicator& to) {
    FrameDecoder d;
    d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    bytes.clear();
    for (auto r = d.next(); r.status == FrameDecoder::Status::Frame; r = d.next()) {
      to.on_frame(r.frame);
    }
  }
  std::string bytes;
};

TEST(ReplicatorPair, BackupTableFollowsTheMaster) {
  FakeTable master_table, backup_table;
  Pipe to_backup, to_master;
  Replicator master({"fw1", "fw2"}, master_table, master_table, to_backup);
  Replicator backup({"fw2", "fw1"}, backup_table, backup_table, to_master);
  master_table.entries = {test::snat_tcp_flow(1), test::icmpv6_flow()};
  master.set_role(Replicator::Role::Source);
  master.on_connected();
  backup.on_connected();
  to_backup.deliver(backup);
  to_master.deliver(master);  // hello -> the master sends its bulk
  to_backup.deliver(backup);
  master.on_local_change({FlowChangeKind::Destroy, test::icmpv6_flow()});
  master.flush();
  to_backup.deliver(backup);
  ASSERT_EQ(backup_table.applied.size(), 3u);
  EXPECT_EQ(backup_table.applied[0].entry, test::snat_tcp_flow(1));
  EXPECT_EQ(backup_table.applied[1].entry, test::icmpv6_flow());
  EXPECT_EQ(backup_table.applied[2].kind, FlowChangeKind::Destroy);
  EXPECT_EQ(backup.counters().bulk_syncs_received, 1u);
  EXPECT_EQ(backup.counters().sequence_gaps, 0u);
}

}  // namespace
}  // namespace fwha::sync
