// Replication logic with fake kernel tables, a fake link and a manual clock: first sync,
// incremental changes, acknowledgements and resume, reconciliation of drift (deleted by hand,
// stale, expiring), overruns and overflows, invalid input, the handover barrier. Most tests
// wire a Master and a Backup back to back through the real frame codec.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/eventfd.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "fake_conntrack.h"
#include "fwha/unique_fd.h"
#include "flow_samples.h"
#include "sync/flow_wire.h"
#include "sync/event_pump.h"
#include "sync/frame_codec.h"
#include "sync/reconciliation.h"
#include "sync/replicator.h"

namespace fwha::sync {
namespace {

using test::FakeTable;
using ::testing::ElementsAre;

// One direction of the link: frames are encoded, queued, and delivered on demand.
class Pipe : public FrameTransport {
 public:
  bool connected() const override { return up; }
  bool send(const wire::Frame& f) override {
    if (!up) return false;
    append_frame(f, bytes);
    kinds.push_back(f.body_case());
    return true;
  }
  bool send_encoded(const std::string& encoded) override {
    if (!up) return false;
    if (close_inside_next_flows) {  // SyncLink's close handler runs inside a send (queue full)
      auto close = std::exchange(close_inside_next_flows, nullptr);
      up = false;
      close();
      return false;
    }
    bytes += encoded;
    kinds.push_back(wire::Frame::kFlows);  // the replicator pre-encodes only FlowBatches
    return true;
  }
  // Delivers everything queued; returns false if the receiver asked to disconnect.
  bool deliver(Replicator& to) {
    FrameDecoder d;
    d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    bytes.clear();
    bool ok = true;
    for (auto r = d.next(); r.status == FrameDecoder::Status::Frame; r = d.next()) {
      ok = to.on_frame(r.frame) && ok;
    }
    to.after_input();
    return ok;
  }
  void drop() { bytes.clear(); }
  bool up = true;
  std::string bytes;
  std::vector<wire::Frame::BodyCase> kinds;
  std::function<void()> close_inside_next_flows;
};

struct Clock {
  sync::Clock::time_point t{};
  void advance(std::chrono::milliseconds d) { t += d; }
};

FlowEntry flow(uint16_t port) { return test::snat_tcp_flow(port, static_cast<uint16_t>(port + 20000)); }

class PairTest : public ::testing::Test {
 protected:
  Replicator::Options opts(const std::string& me, const std::string& peer) {
    Replicator::Options o;
    o.node_name = me;
    o.peer_name = peer;
    o.max_changes_per_frame = 3;
    o.reconcile_interval = std::chrono::seconds(10);
    o.now = [this] { return clock.t; };
    o.new_session = [this] { return ++sessions; };
    return o;
  }
  void SetUp() override {
    master = std::make_unique<Replicator>(opts("fw1", "fw2"), mtable, mtable, to_backup);
    backup = std::make_unique<Replicator>(opts("fw2", "fw1"), btable, btable, to_master);
    master->set_role(Replicator::Role::Source);
  }
  // Connects and runs the exchange until both directions are quiet.
  // The link comes up and both sides send their Hello; nothing is delivered yet.
  void link_up() {
    to_backup.up = to_master.up = true;
    master->on_connected();
    backup->on_connected();
  }
  void connect() {
    link_up();
    settle();
  }
  void disconnect() {
    to_backup.up = to_master.up = false;
    to_backup.drop();
    to_master.drop();
    master->on_disconnected();
    backup->on_disconnected();
  }
  void settle() {
    for (int i = 0; i < 20 && (!to_backup.bytes.empty() || !to_master.bytes.empty()); ++i) {
      to_backup.deliver(*backup);
      to_master.deliver(*master);
    }
  }
  void change(FlowChangeKind kind, const FlowEntry& e) {
    mtable.apply({kind, e});
    master->on_local_change({kind, e});
  }

  Clock clock;
  uint64_t sessions = 100;
  FakeTable mtable, btable;
  Pipe to_backup, to_master;
  std::unique_ptr<Replicator> master, backup;
};

TEST_F(PairTest, FirstSyncFillsAnEmptyBackupThroughAReconciliationRound) {
  for (uint16_t p = 1; p <= 10; ++p) mtable.put(flow(p));
  connect();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(master->reconcile_counters().causes.at("connect"), 1u);
  EXPECT_EQ(backup->reconcile_counters().rounds_completed, 1u);
  EXPECT_EQ(backup->counters().entries_applied, 10u);
  EXPECT_EQ(master->unacked_bytes(), 0u) << "the backup acknowledged everything";
}

TEST_F(PairTest, OnlyDifferingBucketsAreSent) {
  for (uint16_t p = 1; p <= 200; ++p) mtable.put(flow(p));
  for (uint16_t p = 1; p <= 199; ++p) btable.put(flow(p));  // one entry missing
  connect();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(master->reconcile_counters().buckets_repaired, 1u);
  EXPECT_LE(backup->counters().entries_applied, 3u) << "only the one bucket's entries";
}

TEST_F(PairTest, IncrementalChangesAreAppliedAndAcknowledged) {
  connect();
  change(FlowChangeKind::New, flow(1));
  change(FlowChangeKind::New, flow(2));
  change(FlowChangeKind::Update, flow(1));
  change(FlowChangeKind::New, flow(3));  // 4th change: one frame full, one pending
  master->flush();
  EXPECT_GT(master->unacked_bytes(), 0u);
  clock.advance(std::chrono::milliseconds(40));
  EXPECT_EQ(master->lag(), std::chrono::milliseconds(40));
  settle();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(master->unacked_bytes(), 0u);
  EXPECT_EQ(master->lag(), std::chrono::milliseconds(0));
  change(FlowChangeKind::Destroy, flow(2));
  master->flush();
  settle();
  EXPECT_FALSE(btable.has(flow(2)));
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PairTest, ReconnectResumesFromTheLastAppliedFrame) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  settle();
  // Two frames sent, the link dies before the backup reads them.
  change(FlowChangeKind::New, flow(2));
  master->flush();
  change(FlowChangeKind::New, flow(3));
  master->flush();
  disconnect();
  connect();
  EXPECT_EQ(master->counters().resumes, 1u);
  EXPECT_EQ(master->counters().frames_resent, 2u);
  EXPECT_EQ(master->reconcile_counters().rounds_started, 1u) << "no new round: resumed";
  EXPECT_TRUE(btable.same_as(mtable));
}

// A flow without NAT has the mirror of its original for a reply: a peer whose Hello said
// implied_reply gets it without the reply tuple (22 bytes of an IPv4 entry), and holds the
// same entry. Frames kept with replies left out never go to a peer that stopped reading them
// so (downgraded between two connections): a round instead of the resume.
class ImpliedReplyTest : public PairTest {
 protected:
  static FlowEntry plain(uint16_t port) {
    FlowEntry e = flow(port);
    e.reply = mirror(e.original);
    e.status = flow_status::kSeenReply | flow_status::kAssured | flow_status::kConfirmed;
    return e;
  }
  // The changes of the FlowBatch frames queued towards the backup, decoded.
  std::vector<wire::FlowChange> queued_changes() const {
    FrameDecoder d;
    d.feed(reinterpret_cast<const uint8_t*>(to_backup.bytes.data()), to_backup.bytes.size());
    std::vector<wire::FlowChange> out;
    for (auto r = d.next(); r.status == FrameDecoder::Status::Frame; r = d.next()) {
      if (r.frame.has_flows()) {
        for (const auto& c : r.frame.flows().changes()) out.push_back(c);
      }
    }
    return out;
  }
  // Reconnects; the backup's Hello reaches the master with or without implied_reply.
  void reconnect(bool backup_implies_reply) {
    disconnect();
    link_up();
    FrameDecoder d;
    d.feed(reinterpret_cast<const uint8_t*>(to_master.bytes.data()), to_master.bytes.size());
    to_master.bytes.clear();
    for (auto r = d.next(); r.status == FrameDecoder::Status::Frame; r = d.next()) {
      if (r.frame.has_hello() && !backup_implies_reply) r.frame.mutable_hello()->clear_implied_reply();
      master->on_frame(r.frame);
    }
    settle();
  }
};

TEST_F(ImpliedReplyTest, AMirroredReplyIsLeftOutAndTheBackupHoldsTheSameEntry) {
  connect();
  change(FlowChangeKind::New, plain(1));
  change(FlowChangeKind::New, flow(2));  // SNAT: its reply carries the binding
  master->flush();
  const auto sent = queued_changes();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_FALSE(sent[0].flow().has_reply());
  EXPECT_TRUE(sent[1].flow().has_reply());
  settle();
  EXPECT_TRUE(btable.has(plain(1)));
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(ImpliedReplyTest, APeerWhoseHelloDidNotSaySoGetsEveryReply) {
  connect();
  reconnect(/*backup_implies_reply=*/false);
  change(FlowChangeKind::New, plain(1));
  master->flush();
  const auto sent = queued_changes();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].flow().has_reply());
  settle();
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(ImpliedReplyTest, KeptFramesWithoutRepliesAreNotResumedToAPeerThatStoppedReadingThem) {
  for (bool implies : {true, false}) {
    SetUp();
    mtable = FakeTable{};
    btable = FakeTable{};
    connect();
    change(FlowChangeKind::New, plain(1));
    master->flush();
    settle();  // applied: the backup's Hello will name this session
    change(FlowChangeKind::New, plain(2));
    master->flush();
    to_backup.drop();  // lost with the link: kept for the resume
    const uint64_t resumes = master->counters().resumes;
    const uint64_t rounds = master->reconcile_counters().rounds_started;
    reconnect(implies);
    if (implies) {
      EXPECT_EQ(master->counters().resumes, resumes + 1);
    } else {
      EXPECT_EQ(master->counters().resumes, resumes) << "no resume of frames it cannot read";
      EXPECT_EQ(master->reconcile_counters().rounds_started, rounds + 1) << "a round instead";
    }
    EXPECT_TRUE(btable.same_as(mtable)) << "implies " << implies;
  }
}

// A reconnect that resumes runs no round, so what changed while the link was down must be in
// the frames it resends: held in frames then (not sent), resent after the earlier ones. Seen
// in the lab: flows opened during a 200 ms reconnect never reached the Backup.
TEST_F(PairTest, ChangesWhileTheLinkIsDownAreCarriedByTheResume) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  settle();                              // applied: the backup can resume our session
  change(FlowChangeKind::New, flow(2));  // pending, not yet in a frame
  disconnect();
  change(FlowChangeKind::New, flow(3));
  change(FlowChangeKind::Destroy, flow(1));
  master->flush();
  EXPECT_EQ(master->counters().changes_held_while_down, 2u);
  EXPECT_EQ(master->counters().send_failures, 0u) << "held, not a failed send";
  connect();
  EXPECT_EQ(master->counters().resumes, 1u);
  EXPECT_EQ(master->reconcile_counters().rounds_started, 1u) << "resumed, no round";
  EXPECT_TRUE(btable.has(flow(2)));
  EXPECT_TRUE(btable.has(flow(3)));
  EXPECT_FALSE(btable.has(flow(1)));
  EXPECT_TRUE(btable.same_as(mtable));
}

// Before the peer ever saw our session a resume is impossible: nothing is held, and the
// connect round brings the peer in line.
TEST_F(PairTest, ChangesBeforeThePeerKnowsTheSessionAreLeftToTheRound) {
  change(FlowChangeKind::New, flow(1));
  master->flush();
  EXPECT_EQ(master->counters().changes_held_while_down, 0u);
  EXPECT_EQ(master->unacked_bytes(), 0u);
  connect();
  EXPECT_EQ(master->counters().resumes, 0u);
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PairTest, ResentFramesAlreadyAppliedAreSkipped) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  to_backup.deliver(*backup);  // applied, but the ack is lost with the link
  to_master.drop();
  disconnect();
  connect();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->counters().duplicates, 0u) << "the backup's hello told where it was";
}

TEST_F(PairTest, RestartedBackupIsReconciledNotResumed) {
  for (uint16_t p = 1; p <= 20; ++p) mtable.put(flow(p));
  connect();
  btable.entries.erase(key_of(flow(5)));                 // lost while it was down
  btable.put(flow(999));                                 // stale
  disconnect();
  backup = std::make_unique<Replicator>(opts("fw2", "fw1"), btable, btable, to_master);
  connect();
  EXPECT_EQ(master->counters().resumes, 0u);
  EXPECT_EQ(master->reconcile_counters().causes.at("connect"), 2u);
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->reconcile_counters().entries_removed, 1u);
}

TEST_F(PairTest, PeriodicRoundRestoresEntriesDeletedByHandOnTheBackup) {
  for (uint16_t p = 1; p <= 50; ++p) mtable.put(flow(p));
  connect();
  btable.entries.erase(key_of(flow(7)));
  btable.entries.erase(key_of(flow(8)));
  clock.advance(std::chrono::seconds(9));
  master->tick();
  settle();
  EXPECT_FALSE(btable.same_as(mtable)) << "not before the interval";
  clock.advance(std::chrono::seconds(1));
  master->tick();
  settle();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(master->reconcile_counters().causes.at("periodic"), 1u);
}

TEST_F(PairTest, ChangeRacingWithARoundIsNotRemoved) {
  for (uint16_t p = 1; p <= 5; ++p) mtable.put(flow(p));
  connect();
  btable.put(flow(600));  // stale on the backup: the round will repair its bucket
  clock.advance(std::chrono::seconds(10));
  master->tick();                      // summary sent (flow 600 absent on the master)
  to_backup.deliver(*backup);          // the backup answers with its request
  // Before the master reads the request, flow 600 appears on the master for real.
  change(FlowChangeKind::New, flow(600));
  master->flush();
  // The master's repair dump now includes it too; either way it must survive.
  settle();
  EXPECT_TRUE(btable.has(flow(600)));
  EXPECT_TRUE(btable.same_as(mtable));
}

// With Options::defer (fwhad posts to its loop) a round's dumps go a part at a time and the
// frames of the stream keep flowing in between; the rounds still converge, and a change the
// sink applies while it compares is kept.
class DeferredPairTest : public PairTest {
 protected:
  void SetUp() override {
    auto deferring = [this](Replicator::Options o) {
      o.defer = [this](std::function<void()> step) { deferred.push_back(std::move(step)); };
      return o;
    };
    master = std::make_unique<Replicator>(deferring(opts("fw1", "fw2")), mtable, mtable, to_backup);
    backup = std::make_unique<Replicator>(deferring(opts("fw2", "fw1")), btable, btable, to_master);
    master->set_role(Replicator::Role::Source);
  }
  bool step() {
    if (deferred.empty()) return false;
    auto f = std::move(deferred.front());
    deferred.pop_front();
    f();
    return true;
  }
  void run() {
    for (int i = 0; i < 100000; ++i) {
      const bool stepped = step();
      if (!stepped && to_backup.bytes.empty() && to_master.bytes.empty()) return;
      to_backup.deliver(*backup);
      to_master.deliver(*master);
    }
    ADD_FAILURE() << "did not settle";
  }
  std::deque<std::function<void()>> deferred;
};

TEST_F(DeferredPairTest, RoundsGoInPartsAndConverge) {
  for (uint16_t p = 1; p <= 6000; ++p) mtable.put(flow(p));
  for (uint16_t p = 1; p <= 3000; ++p) btable.put(flow(p));  // a peer half there: compared
  link_up();
  to_backup.deliver(*backup);
  to_master.deliver(*master);
  EXPECT_FALSE(deferred.empty()) << "the connect round's dump waits for the loop";
  run();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_GE(backup->reconcile_counters().rounds_completed, 1u);

  btable.entries.erase(key_of(flow(7)));  // drift, healed by the periodic round
  clock.advance(std::chrono::seconds(10));
  master->tick();
  EXPECT_FALSE(deferred.empty()) << "its digest goes in parts";
  run();
  EXPECT_EQ(master->reconcile_counters().causes.at("periodic"), 1u);
  EXPECT_TRUE(btable.same_as(mtable));
}

// A periodic round that finds one bucket differing asks for that bucket only, and the source
// reads its whole table to find the bucket's entries. Read in one go, 250k entries held the
// thread ~0.7 s with the event socket unread: the answer gives the loop back every
// kDumpStepEntries entries it reads, and a change made meanwhile goes out at once.
class SparseAnswerTest : public DeferredPairTest {
 protected:
  static constexpr uint16_t kFlows = 20000;
  void SetUp() override {
    DeferredPairTest::SetUp();
    for (uint16_t p = 1; p <= kFlows; ++p) {
      mtable.put(flow(p));
      btable.put(flow(p));
    }
    link_up();
    run();
  }
  // Drift in one bucket, the periodic round, and the loop run until the answer has started.
  bool answer_one_bucket() {
    btable.entries.erase(key_of(flow(7)));
    clock.advance(std::chrono::seconds(10));
    master->tick();
    for (int i = 0; i < 100000 && !master->repairing(); ++i) {
      if (!step() && to_backup.bytes.empty() && to_master.bytes.empty()) return false;
      to_backup.deliver(*backup);
      to_master.deliver(*master);
    }
    return master->repairing();
  }
};

TEST_F(SparseAnswerTest, ItGivesTheLoopBackWhileItReads) {
  ASSERT_TRUE(btable.same_as(mtable));
  const uint64_t answered = master->reconcile_counters().answers_completed;
  ASSERT_TRUE(answer_one_bucket()) << "the request reached the master, and one step ran";
  change(FlowChangeKind::New, flow(30000));
  master->flush();
  to_backup.deliver(*backup);
  EXPECT_TRUE(btable.has(flow(30000))) << "a change made while the answer reads goes out";
  EXPECT_TRUE(master->repairing());
  size_t steps = 1;
  while (master->repairing() && step()) ++steps;
  EXPECT_FALSE(master->repairing());
  EXPECT_GE(steps, kFlows / 2048u) << "a step per kDumpStepEntries entries read";
  run();
  EXPECT_EQ(master->reconcile_counters().answers_completed, answered + 1);
  EXPECT_TRUE(btable.has(flow(7)));
  EXPECT_TRUE(btable.same_as(mtable));
}

// A handover's barrier vouches for everything before it: the answer goes out whole first.
TEST_F(SparseAnswerTest, ABarrierSendsTheRestOfTheAnswerFirst) {
  ASSERT_TRUE(answer_one_bucket());
  std::optional<bool> took_over;
  ASSERT_TRUE(master->request_barrier([&](bool t) { took_over = t; }));
  EXPECT_FALSE(master->repairing()) << "the answer ended before the barrier went";
  run();
  EXPECT_EQ(took_over, std::optional<bool>(false));
  EXPECT_TRUE(btable.has(flow(7)));
  EXPECT_TRUE(btable.same_as(mtable));
}

// Under churn a periodic round sees buckets differ only because a change crossed the dumps:
// the source read the entry before the change, the sink after it. Repairing such a bucket
// resends all its entries (at 2000 new flows/s a round resent a third of a 200k table): a
// periodic round leaves it to the next one, and the next repairs it whatever happens, so a
// drift in it waits one round at most. Other rounds run because something was lost: they
// leave nothing.
class ChurnRoundTest : public DeferredPairTest {
 protected:
  void SetUp() override {
    DeferredPairTest::SetUp();
    // More than a dump step (2048), so the source's digest takes turns of the loop.
    for (uint16_t p = 1; p <= 5000; ++p) {
      mtable.put(flow(p));
      btable.put(flow(p));
    }
    // Two flows of one bucket: a change to one crosses the dumps, the other drifts.
    for (uint16_t a = 1; a <= 1000 && !same_bucket; ++a) {
      for (uint16_t b = static_cast<uint16_t>(a + 1); b <= 1000; ++b) {
        if (bucket_of(key_of(flow(a))) == bucket_of(key_of(flow(b)))) {
          same_bucket = std::make_pair(a, b);
          break;
        }
      }
    }
    link_up();
    run();
  }
  // A round whose source has begun its digest's dump; then the mark of flow(p) changes,
  // and the sink has the change before it compares.
  enum class Cause { kPeriodic, kOverrun };
  void round_crossed_by_a_change(uint16_t p, Cause cause) {
    if (cause == Cause::kPeriodic) {
      clock.advance(std::chrono::seconds(10));
      master->tick();
    } else {
      master->on_overrun();
    }
    FlowEntry e = flow(p);
    e.mark = ++marks;
    change(FlowChangeKind::Update, e);
    master->flush();
    to_backup.deliver(*backup);
    run();
  }
  // An overrun's round, run until its answer (paced: it is for few buckets) has begun.
  bool overrun_answer_running() {
    master->on_overrun();
    for (int i = 0; i < 1000 && !master->repairing(); ++i) {
      step();
      to_backup.deliver(*backup);
      to_master.deliver(*master);
    }
    return master->repairing();
  }
  std::optional<std::pair<uint16_t, uint16_t>> same_bucket;
  uint32_t marks = 100;
};

TEST_F(ChurnRoundTest, APeriodicRoundLeavesABucketAChangeCrossedToTheNextRound) {
  ASSERT_TRUE(same_bucket);
  const auto [p, q] = *same_bucket;
  const uint64_t answered = master->reconcile_counters().answers_completed;
  round_crossed_by_a_change(p, Cause::kPeriodic);
  EXPECT_EQ(backup->reconcile_counters().buckets_left_in_flux, 1u);
  EXPECT_EQ(master->reconcile_counters().answers_completed, answered) << "nothing resent";
  EXPECT_TRUE(btable.same_as(mtable)) << "the change itself arrived";

  // A drift in that bucket, and again a change crossing the dumps: repaired this time.
  btable.entries.erase(key_of(flow(q)));
  round_crossed_by_a_change(p, Cause::kPeriodic);
  EXPECT_EQ(backup->reconcile_counters().buckets_left_in_flux, 1u) << "not twice in a row";
  EXPECT_EQ(master->reconcile_counters().answers_completed, answered + 1);
  EXPECT_TRUE(btable.has(flow(q)));
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(ChurnRoundTest, AnOverrunsRoundLeavesNothing) {
  ASSERT_TRUE(same_bucket);
  const auto [p, q] = *same_bucket;
  btable.entries.erase(key_of(flow(q)));
  round_crossed_by_a_change(p, Cause::kOverrun);
  EXPECT_EQ(backup->reconcile_counters().buckets_left_in_flux, 0u);
  EXPECT_TRUE(btable.has(flow(q)));
  EXPECT_TRUE(btable.same_as(mtable));
}

// A stale copy in a bucket left in flux stays for that round (the bucket is not repaired, so
// nothing in it is deleted) and goes in the next.
TEST_F(ChurnRoundTest, AStaleCopyInABucketLeftGoesInTheNextRound) {
  ASSERT_TRUE(same_bucket);
  const uint16_t p = same_bucket->first;
  std::optional<FlowEntry> r;  // a flow the master never had, in p's bucket
  for (uint16_t zone = 1; zone <= 16 && !r; ++zone) {
    for (uint16_t c = 1; c <= 40000 && !r; ++c) {
      FlowEntry e = flow(c);
      e.zone = zone;
      if (bucket_of(key_of(e)) == bucket_of(key_of(flow(p)))) r = e;
    }
  }
  ASSERT_TRUE(r);
  btable.put(*r);
  round_crossed_by_a_change(p, Cause::kPeriodic);
  EXPECT_EQ(backup->reconcile_counters().buckets_left_in_flux, 1u);
  EXPECT_TRUE(btable.has(*r));
  clock.advance(std::chrono::seconds(10));
  master->tick();
  run();
  EXPECT_FALSE(btable.has(*r));
  EXPECT_EQ(backup->reconcile_counters().entries_removed, 1u);
  EXPECT_TRUE(btable.same_as(mtable));
}

// A periodic round asked for while another runs is deferred; an overrun meanwhile takes its
// place (a periodic round leaves buckets, a round for a loss must not). And the running round
// stays the one a resume runs again.
TEST_F(ChurnRoundTest, AnOverrunTakesTheDeferredPeriodicRoundsPlace) {
  ASSERT_TRUE(same_bucket);
  btable.entries.erase(key_of(flow(same_bucket->second)));  // the answer is sparse: paced
  ASSERT_TRUE(overrun_answer_running());
  clock.advance(std::chrono::seconds(10));
  master->tick();           // periodic: deferred
  master->on_overrun();     // takes its place
  run();
  const auto& causes = master->reconcile_counters().causes;
  EXPECT_EQ(causes.count(kPeriodicRound), 0u);
  EXPECT_EQ(causes.at("overrun"), 2u);
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(ChurnRoundTest, AResumeRunsTheCutRoundAgainNotTheDeferredPeriodicOne) {
  ASSERT_TRUE(same_bucket);
  change(FlowChangeKind::New, flow(40000));
  master->flush();
  run();  // a frame of the session applied: the backup can resume it
  btable.entries.erase(key_of(flow(same_bucket->second)));
  ASSERT_TRUE(overrun_answer_running());
  clock.advance(std::chrono::seconds(10));
  master->tick();  // periodic: deferred behind the answer
  disconnect();
  link_up();
  run();
  EXPECT_EQ(master->counters().resumes, 1u);
  const auto& causes = master->reconcile_counters().causes;
  EXPECT_EQ(causes.count("overrun, again after a resume"), 1u);
  EXPECT_EQ(causes.count(kPeriodicRound), 0u);
  EXPECT_TRUE(btable.same_as(mtable));
}

// The flush soak (docs/performance.md): a flush overran the event socket every ~2 s, and
// each overrun sent a new summary while the sink was still comparing the last one. The sink
// starts over on each summary, so no round ended, nothing stale was removed, and the
// standby's table filled up until the load stopped. One round at a time, summary to end.
TEST_F(DeferredPairTest, OverrunsFasterThanARoundDoNotRestartIt) {
  for (uint16_t p = 1; p <= 6000; ++p) mtable.put(flow(p));
  link_up();
  run();
  ASSERT_TRUE(btable.same_as(mtable));
  // Destroys lost in the overrun: the sink's comparison (a dump of its table) takes several
  // times the source's digest, as on a standby that holds far more than its Master.
  for (uint16_t p = 7001; p <= 27000; ++p) btable.put(flow(p));
  master->on_overrun();
  const uint64_t started = master->reconcile_counters().rounds_started;
  for (int i = 0; i < 1000 && !btable.same_as(mtable); ++i) {
    step();
    to_backup.deliver(*backup);
    to_master.deliver(*master);
    master->on_overrun();  // the next flush, and the next: overruns keep coming
  }
  EXPECT_TRUE(btable.same_as(mtable)) << "the first round ended and removed the stale copies";
  EXPECT_EQ(backup->reconcile_counters().entries_removed, 20000u);
  EXPECT_LE(master->reconcile_counters().rounds_started, started + 1)
      << "the overruns meanwhile wait for it, as one round";
}

// A round the peer never answers (a peer stuck while its link stays up) does not hold every
// later round back for good: after kRoundAnswerBound a new one starts.
TEST_F(PairTest, ARoundLeftUnansweredGivesWayToANewOneAfterItsBound) {
  connect();
  mtable.put(flow(1));
  master->on_overrun();  // its summary goes out; the peer never answers
  to_backup.drop();
  const uint64_t started = master->reconcile_counters().rounds_started;
  clock.advance(Replicator::kRoundAnswerBound - std::chrono::seconds(1));
  master->on_overrun();
  EXPECT_EQ(master->reconcile_counters().rounds_started, started) << "waits for the answer";
  clock.advance(std::chrono::seconds(2));
  master->on_overrun();
  EXPECT_EQ(master->reconcile_counters().rounds_started, started + 1);
  settle();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(master->reconcile_counters().rounds_started, started + 1)
      << "the overrun deferred meanwhile is covered by the round that started after it";
}

TEST_F(DeferredPairTest, AChangeAppliedWhileTheSinkComparesIsKept) {
  for (uint16_t p = 1; p <= 6000; ++p) mtable.put(flow(p));
  link_up();
  run();
  ASSERT_TRUE(btable.same_as(mtable));
  btable.put(flow(6500));  // stale on the backup: its bucket will be repaired
  clock.advance(std::chrono::seconds(10));
  master->tick();
  while (step()) {}                 // the master's digest, all parts: summary sent
  to_backup.deliver(*backup);       // the backup starts comparing, a part per step
  ASSERT_TRUE(step());              // one part of the backup's dump
  change(FlowChangeKind::New, flow(6500));  // now real on the master, mid-comparison
  master->flush();
  to_backup.deliver(*backup);       // applied while the backup's dump runs
  run();
  EXPECT_TRUE(btable.has(flow(6500)));
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PairTest, EntryCloseToExpiryIsRefreshedOrDestroyed) {
  FlowEntry idle = flow(1), gone = flow(2);
  mtable.put(idle);
  mtable.put(gone);
  connect();
  // On the backup both are about to expire; the master keeps `idle` alive, `gone` ended
  // without its destroy reaching us.
  btable.entries[key_of(idle)].timeout_s = 5;
  btable.entries[key_of(gone)].timeout_s = 5;
  mtable.entries.erase(key_of(gone));
  mtable.entries[key_of(idle)].timeout_s = 431000;
  clock.advance(std::chrono::seconds(10));
  master->tick();
  settle();
  // The master's current timeout plus the slack of one interval (10 s) and 10 s margin.
  EXPECT_EQ(btable.entries.at(key_of(idle)).timeout_s, 431000u + 20u);
  EXPECT_FALSE(btable.has(gone));
  EXPECT_EQ(master->reconcile_counters().expiring_refreshed, 1u);
}

// 120k IPv6 entries near expiry, listed whole, would make a ~12 MB RepairRequest, over the
// frame limit: the Master would reject it and drop the link every round. The list is cut by
// size, nearest expiry first, and the link stays up. Listed by key, one round refreshes more
// than 60k of them (~20k when each went whole in half a frame).
TEST_F(PairTest, ExpiringListFitsInOneFrameNearestExpiryFirst) {
  connect();
  constexpr uint32_t kCount = 120000;
  FlowEntry nearest;
  for (uint32_t i = 0; i < kCount; ++i) {
    FlowEntry e = test::icmpv6_flow();
    e.original.icmp_id = static_cast<uint16_t>(i);
    e.reply.icmp_id = static_cast<uint16_t>(i);
    e.zone = static_cast<uint16_t>(1 + i / 65536);
    e.timeout_s = 5 + i % 7;
    if (i == kCount - 1) {
      e.timeout_s = 1;
      nearest = e;
    }
    FlowEntry alive = e;
    alive.timeout_s = 3600;
    mtable.put(alive);
    btable.put(e);
  }
  clock.advance(std::chrono::seconds(10));
  master->tick();
  to_backup.deliver(*backup);  // the summary; the backup answers with its RepairRequest
  ASSERT_FALSE(to_master.bytes.empty());
  EXPECT_LE(to_master.bytes.size(), kMaxFrameBytes);
  EXPECT_TRUE(to_master.deliver(*master));  // accepted: no disconnect
  settle();
  const uint64_t refreshed = master->reconcile_counters().expiring_refreshed;
  EXPECT_GT(refreshed, 60000u);
  EXPECT_LT(refreshed, uint64_t{kCount});
  EXPECT_EQ(btable.entries.at(key_of(nearest)).timeout_s, 3600u + 20u);
}

// A timeout near 2^32 (from a peer, or a kernel that reports one) plus the standby's slack
// must not wrap round to a copy that expires within seconds.
TEST_F(PairTest, TimeoutPlusSlackSaturatesInsteadOfWrapping) {
  FlowEntry e = flow(1);
  e.timeout_s = UINT32_MAX - 5;
  connect();
  change(FlowChangeKind::New, e);
  master->flush();
  settle();
  EXPECT_EQ(btable.entries.at(key_of(e)).timeout_s, UINT32_MAX);
}

TEST_F(PairTest, BackupCopyOutlivesTheMastersTimeoutBySlack) {
  FlowEntry e = flow(1);
  e.timeout_s = 30;  // e.g. UDP unreplied: shorter than a reconciliation interval
  connect();
  change(FlowChangeKind::New, e);
  master->flush();
  settle();
  EXPECT_EQ(btable.entries.at(key_of(e)).timeout_s, 30u + 20u);
}

TEST_F(PairTest, OverrunStartsARoundAtOnce) {
  connect();
  mtable.put(flow(1));  // an event the master never read
  master->on_overrun();
  settle();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(master->reconcile_counters().causes.at("overrun"), 1u);
}

// After a handover or a takeover the new Source's round waits promotion_round_delay: its
// digest dump would hold the sync thread while the handover's answer is due.
TEST_F(PairTest, APromotedSinkReconcilesAfterADelayNotAtOnce) {
  for (uint16_t p = 1; p <= 5; ++p) mtable.put(flow(p));
  connect();
  master->set_role(Replicator::Role::Sink);
  backup->set_role(Replicator::Role::Source);
  settle();
  EXPECT_EQ(backup->reconcile_counters().causes.count("promotion"), 0u) << "not at once";
  clock.advance(std::chrono::milliseconds(999));
  backup->tick();
  EXPECT_EQ(backup->reconcile_counters().causes.count("promotion"), 0u);
  clock.advance(std::chrono::milliseconds(1));
  backup->tick();
  settle();
  EXPECT_EQ(backup->reconcile_counters().causes.at("promotion"), 1u);
  EXPECT_EQ(master->reconcile_counters().rounds_completed, 1u) << "the new sink completed it";
  backup->tick();
  EXPECT_EQ(backup->reconcile_counters().causes.at("promotion"), 1u) << "once";
  EXPECT_EQ(backup->reconcile_counters().causes.count("periodic"), 0u)
      << "the periodic round counts from the promotion";
}

// Two Masters for a while (this node frozen, the peer took over): the peer's frames that
// arrive while we still think we are Master are dropped. Once we step down, the peer's later
// frames must not be taken as the start of its session: the dropped ones are resent first.
// Seen in the failover bench: a missed destroy left a stale copy with another NAT binding.
TEST_F(PairTest, FramesDroppedWhileBothWereMasterAreResentAfterSteppingDown) {
  for (uint16_t p = 1; p <= 5; ++p) mtable.put(flow(p));
  connect();
  ASSERT_TRUE(btable.same_as(mtable));
  backup->set_role(Replicator::Role::Source);  // fw2 took over; fw1 (master) does not know yet
  auto peer_change = [this](FlowChangeKind kind, const FlowEntry& e) {
    btable.apply({kind, e});
    backup->on_local_change({kind, e});
    backup->flush();
  };
  peer_change(FlowChangeKind::Destroy, flow(2));
  peer_change(FlowChangeKind::New, flow(30));
  settle();
  EXPECT_EQ(master->counters().flows_ignored_as_master, 2u);
  EXPECT_TRUE(mtable.has(flow(2))) << "not applied while Master";

  master->set_role(Replicator::Role::Sink);  // fw1 steps down
  peer_change(FlowChangeKind::New, flow(31));
  EXPECT_FALSE(to_master.deliver(*master)) << "a gap: reconnect so the peer resends";
  disconnect();
  connect();
  EXPECT_EQ(backup->counters().resumes, 1u) << "resumed from the first dropped frame";
  EXPECT_EQ(backup->counters().frames_resent, 3u);
  EXPECT_FALSE(mtable.has(flow(2)));
  EXPECT_TRUE(mtable.has(flow(30)));
  EXPECT_TRUE(mtable.has(flow(31)));
  EXPECT_TRUE(mtable.same_as(btable));
}

// A copy with another NAT binding (an earlier flow on the same tuple, whose destroy never
// arrived) is replaced by the round, not updated: an update keeps the old binding, and the
// bucket would differ in every round after. A copy that differs otherwise is updated.
TEST_F(PairTest, RoundReplacesACopyWithAnotherNatBinding) {
  for (uint16_t p = 1; p <= 20; ++p) mtable.put(flow(p));
  for (uint16_t p = 1; p <= 20; ++p) btable.put(flow(p));
  btable.put(test::snat_tcp_flow(5, 999));  // flow 5 bound to another NAT port
  FlowEntry marked = flow(9);
  marked.mark = 99;
  btable.put(marked);                       // flow 9 with another mark, same binding
  connect();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->counters().copies_replaced, 1u);
  for (const FlowChange& c : btable.log) {
    if (key_of(c.entry) == key_of(flow(5))) {
      EXPECT_TRUE(c.replaces_copy);
    }
    if (key_of(c.entry) == key_of(flow(9))) {
      EXPECT_FALSE(c.replaces_copy);
    }
  }
  clock.advance(std::chrono::seconds(10));  // the periodic round finds nothing to repair
  master->tick();
  settle();
  ASSERT_EQ(master->reconcile_counters().causes.at("periodic"), 1u);
  EXPECT_EQ(master->reconcile_counters().buckets_repaired, 2u) << "no bucket a second time";
}

TEST_F(PairTest, PeerTooFarBehindIsReconciledInsteadOfResumed) {
  master = std::make_unique<Replicator>(
      [&] {
        auto o = opts("fw1", "fw2");
        o.max_unacked_bytes = 300;
        return o;
      }(),
      mtable, mtable, to_backup);
  master->set_role(Replicator::Role::Source);
  connect();
  change(FlowChangeKind::New, flow(100));
  master->flush();
  settle();  // the backup applied our session: only falling behind keeps it from resuming
  for (uint16_t p = 1; p <= 30; ++p) change(FlowChangeKind::New, flow(p));
  master->flush();
  EXPECT_GE(master->counters().unacked_overflows, 1u);
  EXPECT_EQ(master->retained_bytes(), 0u) << "bounded: dropped, not grown";
  EXPECT_GT(master->unacked_bytes(), 300u) << "still in flight: counted for pacing and lag";
  disconnect();
  connect();
  EXPECT_EQ(master->counters().resumes, 0u);
  EXPECT_EQ(master->reconcile_counters().causes.count("peer too far behind"), 1u)
      << "the round says why it could not resume";
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PairTest, LagAndStallAreMeasured) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  clock.advance(std::chrono::milliseconds(3500));
  master->tick();
  EXPECT_EQ(master->lag(), std::chrono::milliseconds(3500));
}

// The alerts themselves (warnings and errors also go to syslog): lagging past lag_alert (1 s),
// stalled past stall_after (3 s), each once, and "caught up" when the acks come again.
TEST_F(PairTest, LagAndStallRaiseAlertsOnceAndSayWhenCaughtUp) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();  // sent, not acknowledged
  const auto tick_after = [this](int ms) {
    clock.advance(std::chrono::milliseconds(ms));
    ::testing::internal::CaptureStderr();
    master->tick();
    return ::testing::internal::GetCapturedStderr();
  };
  EXPECT_EQ(tick_after(900), "") << "under lag_alert: quiet";
  EXPECT_THAT(tick_after(200), ::testing::HasSubstr("replication lagging: oldest unacknowledged"));
  EXPECT_EQ(tick_after(100), "") << "once, not every tick";
  EXPECT_THAT(tick_after(2000),
              ::testing::HasSubstr("replication stalled: the peer acknowledged nothing for 3200"));
  EXPECT_EQ(tick_after(1000), "");
  settle();  // the acks come
  EXPECT_THAT(tick_after(10), ::testing::HasSubstr("replication caught up"));
  EXPECT_EQ(tick_after(10), "");
}

TEST_F(PairTest, OwnFlowsAreNotReplicated) {
  LocalFilter f{{*IpAddress::parse("192.0.2.10")}};  // the sample flows' source
  master->set_filter(f);
  mtable.put(flow(1));
  connect();
  EXPECT_TRUE(btable.entries.empty());
  change(FlowChangeKind::New, flow(2));
  EXPECT_EQ(master->counters().entries_filtered, 1u);
}

TEST_F(PairTest, ReplicationOffSendsNoEntries) {
  master = std::make_unique<Replicator>(
      [&] {
        auto o = opts("fw1", "fw2");
        o.replicate = false;
        return o;
      }(),
      mtable, mtable, to_backup);
  master->set_role(Replicator::Role::Source);
  mtable.put(flow(1));
  connect();
  change(FlowChangeKind::New, flow(2));
  master->flush();
  settle();
  EXPECT_TRUE(btable.entries.empty());
}

// --- single replicator: input validation ----------------------------------------------------

struct Recorder : FrameTransport {
  bool connected() const override { return true; }
  bool send(const wire::Frame& f) override {
    sent.push_back(f);
    return true;
  }
  bool send_encoded(const std::string& encoded) override {
    FrameDecoder d;
    d.feed(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
    auto r = d.next();
    EXPECT_EQ(r.status, FrameDecoder::Status::Frame);
    sent.push_back(r.frame);
    return true;
  }
  std::vector<wire::Frame> sent;
};

wire::Frame hello_from(const std::string& node, uint32_t version = kProtocolVersion) {
  wire::Frame f;
  f.mutable_hello()->set_protocol_version(version);
  f.mutable_hello()->set_node(node);
  return f;
}

wire::Frame batch_of(uint64_t session, uint64_t seq, const std::vector<FlowChange>& changes) {
  wire::Frame f;
  f.mutable_flows()->set_seq(seq);
  f.mutable_flows()->set_session(session);
  for (const auto& c : changes) to_wire(c, f.mutable_flows()->add_changes());
  return f;
}

struct SinkTest : ::testing::Test {
  FakeTable table;
  Recorder link;
  Replicator rep{{"fw2", "fw1"}, table, table, link};
  void SetUp() override {
    rep.on_connected();
    ASSERT_TRUE(rep.on_frame(hello_from("fw1")));
  }
};

TEST_F(SinkTest, ValidChangesAreAppliedInvalidOnesRejected) {
  wire::Frame f = batch_of(7, 1, {{FlowChangeKind::New, flow(1)},
                                  {FlowChangeKind::New, flow(2)},
                                  {FlowChangeKind::Destroy, test::icmpv6_flow()}});
  f.mutable_flows()->mutable_changes(1)->mutable_flow()->mutable_original()->set_src("bad");
  EXPECT_TRUE(rep.on_frame(f));
  EXPECT_EQ(rep.counters().entries_received, 3u);
  EXPECT_EQ(rep.counters().entries_applied, 2u);
  EXPECT_EQ(rep.counters().changes_rejected, 1u);
  EXPECT_TRUE(table.has(flow(1)));
  EXPECT_FALSE(table.has(flow(2)));
}

TEST_F(SinkTest, KernelRefusalIsCountedAndTheRestApplied) {
  table.fail_next = true;
  EXPECT_TRUE(rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)},
                                           {FlowChangeKind::New, flow(2)}})));
  EXPECT_EQ(rep.counters().apply_errors, 1u);
  EXPECT_EQ(rep.counters().entries_applied, 1u);
}

TEST_F(SinkTest, AcksCoverWhatWasApplied) {
  rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)}}));
  rep.on_frame(batch_of(7, 2, {{FlowChangeKind::New, flow(2)}}));
  link.sent.clear();
  rep.after_input();
  ASSERT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(link.sent[0].ack().seq(), 2u);
  rep.after_input();
  EXPECT_EQ(link.sent.size(), 1u) << "nothing new to acknowledge";
}

TEST(SinkAcks, CoalescedToOnePerDelayWithAWakeUpForTheRest) {
  FakeTable table;
  Recorder link;
  sync::Clock::time_point t{};
  std::vector<std::chrono::microseconds> wakeups;
  Replicator::Options o{"fw2", "fw1"};
  o.now = [&t] { return t; };
  o.ack_delay = std::chrono::milliseconds(5);
  o.wake_after = [&wakeups](std::chrono::microseconds d) { wakeups.push_back(d); };
  Replicator rep(o, table, table, link);
  rep.on_connected();
  ASSERT_TRUE(rep.on_frame(hello_from("fw1")));
  t += std::chrono::seconds(1);  // long since the last ack: the first goes at once
  link.sent.clear();
  rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)}}));
  rep.after_input();
  ASSERT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(link.sent[0].ack().seq(), 1u);
  for (uint64_t seq = 2; seq <= 4; ++seq) {
    t += std::chrono::milliseconds(1);
    rep.on_frame(batch_of(7, seq, {{FlowChangeKind::New, flow(static_cast<uint16_t>(seq))}}));
    rep.after_input();
  }
  EXPECT_EQ(link.sent.size(), 1u) << "within the delay: no ack per frame";
  ASSERT_EQ(wakeups.size(), 1u) << "one wake-up asked for, not one per frame";
  EXPECT_EQ(wakeups[0], std::chrono::microseconds(4000));
  t += std::chrono::milliseconds(3);
  rep.on_wakeup();
  ASSERT_EQ(link.sent.size(), 2u);
  EXPECT_EQ(link.sent[1].ack().seq(), 4u) << "the late ack covers everything applied";
}

TEST_F(SinkTest, OutOfOrderFramesAreRejectedOrSkipped) {
  EXPECT_TRUE(rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)}})));
  EXPECT_TRUE(rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)}})));
  EXPECT_EQ(rep.counters().duplicates, 1u);
  EXPECT_FALSE(rep.on_frame(batch_of(7, 5, {{FlowChangeKind::New, flow(2)}})))
      << "a gap: reconnect so the source resumes";
  EXPECT_EQ(rep.counters().sequence_gaps, 1u);
  EXPECT_FALSE(table.has(flow(2)));
  EXPECT_TRUE(rep.on_frame(batch_of(8, 1, {{FlowChangeKind::New, flow(3)}})))
      << "a new session starts a new numbering";
}

TEST_F(SinkTest, WrongPeerOrVersionOrFrameBeforeHelloDisconnects) {
  rep.on_connected();
  EXPECT_FALSE(rep.on_frame(batch_of(7, 1, {})));
  EXPECT_EQ(rep.counters().frames_rejected, 1u);
  rep.on_connected();
  EXPECT_FALSE(rep.on_frame(hello_from("intruder")));
  EXPECT_EQ(rep.counters().frames_rejected, 2u);
  rep.on_connected();
  EXPECT_FALSE(rep.on_frame(hello_from("fw1", kProtocolVersion + 1)));
  EXPECT_EQ(rep.counters().frames_rejected, 3u);
  EXPECT_FALSE(rep.peer_hello_seen());
}

TEST_F(SinkTest, UnknownFrameTypeIsSkipped) {
  EXPECT_TRUE(rep.on_frame(wire::Frame{}));
  EXPECT_EQ(rep.counters().unknown_frames, 1u);
}

TEST_F(SinkTest, SinkAnswersABarrierAfterApplying) {
  rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)}}));
  link.sent.clear();
  wire::Frame b;
  b.mutable_barrier()->set_token(42);
  rep.on_frame(b);
  ASSERT_EQ(link.sent.size(), 2u);
  EXPECT_EQ(link.sent[0].ack().seq(), 1u);
  EXPECT_EQ(link.sent[1].barrier_ack().token(), 42u);
}

// --- repair answers are streamed, paced by the peer's acks -----------------------------------

class PacedRepairTest : public PairTest {
 protected:
  void SetUp() override {
    auto o = opts("fw1", "fw2");
    o.repair_window_bytes = 2000;  // a handful of 3-entry frames
    master = std::make_unique<Replicator>(o, mtable, mtable, to_backup);
    backup = std::make_unique<Replicator>(opts("fw2", "fw1"), btable, btable, to_master);
    master->set_role(Replicator::Role::Source);
    for (uint16_t p = 1; p <= 600; ++p) mtable.put(flow(p));
  }
  // One exchange each way; returns the number of frames the master sent in it.
  size_t exchange() {
    const size_t before = to_backup.kinds.size();
    to_backup.deliver(*backup);
    to_master.deliver(*master);
    return to_backup.kinds.size() - before;
  }
  void run(int max_exchanges) {
    for (int i = 0; i < max_exchanges && (!to_backup.bytes.empty() || !to_master.bytes.empty());
         ++i) {
      exchange();
    }
  }
  // The first sync's answer, a few frames in: true while it is still running.
  bool into_the_answer() {
    link_up();
    for (int i = 0; i < 3; ++i) exchange();
    return master->repairing();
  }
};

TEST_F(PacedRepairTest, AnswerGoesOutAtThePaceOfAcks) {
  link_up();
  size_t most = 0;
  for (int i = 0; i < 2000 && (!to_backup.bytes.empty() || !to_master.bytes.empty()); ++i) {
    most = std::max(most, exchange());
    EXPECT_LE(master->unacked_bytes(), 2000u + 1000u) << "never much over the window";
  }
  EXPECT_LT(most, 30u) << "no exchange carried the whole answer (200 frames)";
  EXPECT_FALSE(master->repairing());
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->counters().entries_applied, 600u);
}

TEST_F(PacedRepairTest, EventsDuringARepairAreNotHeldBehindIt) {
  ASSERT_TRUE(into_the_answer());
  FlowEntry fresh = flow(9000);
  change(FlowChangeKind::New, fresh);
  master->flush();
  to_backup.deliver(*backup);
  EXPECT_TRUE(btable.has(fresh)) << "sent at once, between the answer's frames";
  EXPECT_TRUE(master->repairing());
  run(2000);
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PacedRepairTest, RoundsAskedForDuringARepairWaitForItsEnd) {
  ASSERT_TRUE(into_the_answer());
  clock.advance(std::chrono::seconds(11));
  master->tick();
  master->on_overrun();
  EXPECT_EQ(master->reconcile_counters().rounds_started, 1u) << "deferred, not overlapping";
  run(2000);
  EXPECT_EQ(master->reconcile_counters().rounds_started, 2u) << "one deferred round, then";
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PacedRepairTest, BarrierSendsTheRestOfTheRepairFirst) {
  ASSERT_TRUE(into_the_answer());
  bool done = false;
  ASSERT_TRUE(master->request_barrier([&](bool) { done = true; }));
  EXPECT_FALSE(master->repairing());
  to_backup.deliver(*backup);
  to_master.deliver(*master);
  EXPECT_TRUE(done);
  EXPECT_TRUE(btable.same_as(mtable)) << "the barrier vouches for the whole table";
}

TEST_F(PacedRepairTest, FailedDumpRemovesNothingOnTheSink) {
  FlowEntry only_on_backup = flow(5000);
  btable.put(only_on_backup);
  btable.put(flow(1));
  btable.count_known = false;  // so the master compares digests (one dump) before answering
  mtable.fail_dump_number = mtable.dumps + 2;  // the digest dump works, the answer's fails
  link_up();
  run(2000);
  EXPECT_TRUE(btable.has(only_on_backup)) << "an incomplete answer proves nothing stale";
  EXPECT_EQ(backup->reconcile_counters().entries_removed, 0u);
  EXPECT_EQ(backup->reconcile_counters().rounds_completed, 1u);
}

TEST_F(PacedRepairTest, NearlyEmptySinkGetsEverythingWithoutADigestDump) {
  FlowEntry stale = flow(5000);
  btable.put(stale);
  const size_t dumps_before = mtable.dumps;
  link_up();
  run(2000);
  EXPECT_EQ(mtable.dumps - dumps_before, 1u) << "the answer's dump only";
  EXPECT_TRUE(btable.same_as(mtable)) << "everything sent, the stale entry removed";
  EXPECT_FALSE(btable.has(stale));
}

// A standby that has just started holds nothing: it compares nothing either (a dump walks the
// whole hash however empty the table is), and still ends with the source's table.
TEST_F(PacedRepairTest, EmptySinkDoesNotDumpItsTable) {
  const size_t dumps_before = btable.dumps;
  link_up();
  run(2000);
  EXPECT_EQ(btable.dumps, dumps_before) << "nothing to dump";
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->reconcile_counters().rounds_completed, 1u);
}

TEST_F(PacedRepairTest, SinkHoldingATenthOrMoreIsCompared) {
  for (uint16_t p = 1; p <= 100; ++p) btable.put(flow(p));
  const size_t dumps_before = mtable.dumps;
  link_up();
  run(2000);
  EXPECT_EQ(mtable.dumps - dumps_before, 2u) << "digest, then the answer";
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PairTest, BarrierCompletesTheHandoverOnlyWhenAcknowledged) {
  connect();
  std::optional<bool> took_over;
  change(FlowChangeKind::New, flow(1));
  ASSERT_TRUE(master->request_barrier([&](bool t) { took_over = t; }));
  EXPECT_FALSE(took_over);
  settle();
  ASSERT_TRUE(took_over);
  EXPECT_FALSE(*took_over) << "a plain barrier asks nothing";
  EXPECT_TRUE(btable.has(flow(1))) << "the pending change went before the barrier";
  to_backup.up = false;
  EXPECT_FALSE(master->request_barrier([](bool) {}));
}

// Rejoin and takeover ask whether the sink holds the source's state: only after a complete
// round, also when the round found nothing to repair (no RepairEnd then).
TEST_F(PairTest, SinkHoldsTheSourcesStateAfterItsFirstCompleteRound) {
  auto o = opts("fw2", "fw1");
  int synced = 0;
  o.on_synced = [&] { ++synced; };
  backup = std::make_unique<Replicator>(o, btable, btable, to_master);
  for (uint16_t p = 1; p <= 20; ++p) mtable.put(flow(p));
  EXPECT_FALSE(backup->holds_source_state());
  connect();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_TRUE(backup->holds_source_state());
  EXPECT_EQ(synced, 1);
  EXPECT_FALSE(master->holds_source_state()) << "a source is the state";
  disconnect();
  connect();  // a resume or an in-line round: still holds it
  EXPECT_TRUE(backup->holds_source_state());
  master->on_overrun();  // a round where nothing differs ends on the sink, without RepairEnd
  settle();
  EXPECT_EQ(backup->reconcile_counters().rounds_completed, 2u);
  EXPECT_GE(synced, 2);
}

// The Hello tells the peer our configured VRRP priority: fwhad refuses adverts from the
// peer's address with any other one (forged by a host on the LAN).
TEST_F(PairTest, HelloCarriesTheVrrpPriority) {
  auto mo = opts("fw1", "fw2");
  mo.vrrp_priority = 150;
  master = std::make_unique<Replicator>(mo, mtable, mtable, to_backup);
  master->set_role(Replicator::Role::Source);
  EXPECT_EQ(backup->peer_vrrp_priority(), 0u) << "not known before a Hello";
  connect();
  EXPECT_EQ(backup->peer_vrrp_priority(), 150u);
  EXPECT_EQ(master->peer_vrrp_priority(), 0u) << "the backup's options told none";
}

TEST_F(PairTest, TakeOverBarrierWithoutAHandlerIsRefused) {
  connect();
  std::optional<bool> took_over;
  ASSERT_TRUE(master->request_barrier([&](bool t) { took_over = t; }, /*take_over=*/true));
  settle();
  ASSERT_TRUE(took_over);
  EXPECT_FALSE(*took_over);
}

// The sink's owner is asked only once every earlier change is in its table, and may answer
// later (fwhad decides on its main loop); the source learns the answer.
TEST_F(PairTest, TakeOverIsAskedAfterEveryEarlierChangeAndAnsweredLater) {
  auto o = opts("fw2", "fw1");
  std::function<void(bool)> pending_answer;
  bool held_flows_when_asked = false;
  o.on_takeover_request = [&](std::function<void(bool)> answer) {
    held_flows_when_asked = btable.has(flow(1)) && btable.has(flow(2));
    pending_answer = std::move(answer);
  };
  backup = std::make_unique<Replicator>(o, btable, btable, to_master);
  connect();
  change(FlowChangeKind::New, flow(1));
  change(FlowChangeKind::New, flow(2));
  std::optional<bool> took_over;
  ASSERT_TRUE(master->request_barrier([&](bool t) { took_over = t; }, /*take_over=*/true));
  settle();
  ASSERT_TRUE(pending_answer) << "the sink's owner was asked";
  EXPECT_TRUE(held_flows_when_asked);
  EXPECT_FALSE(took_over) << "no answer before the owner decided";
  pending_answer(true);
  settle();
  ASSERT_TRUE(took_over);
  EXPECT_TRUE(*took_over);
}

// Under load the Master's flow frames are its heartbeat (sync_service.h): a Backup takes a
// FlowBatch as the Master speaking, and says so in its Hello; the Master knows when it last
// sent one. A peer whose Hello did not say so (older) keeps getting every Heartbeat.
TEST_F(PairTest, FlowFramesCountAsTheMastersHeartbeatOnlyForAPeerThatSaidSo) {
  int beats = 0;
  auto bo = opts("fw2", "fw1");
  bo.on_heartbeat = [&beats] { ++beats; };
  backup = std::make_unique<Replicator>(bo, btable, btable, to_master);
  EXPECT_FALSE(master->peer_takes_flows_as_heartbeats()) << "no Hello yet";
  EXPECT_FALSE(master->last_flows_sent());
  connect();
  EXPECT_TRUE(master->peer_takes_flows_as_heartbeats());
  const int after_round = beats;  // whatever the first round sent
  clock.advance(std::chrono::milliseconds(7));
  change(FlowChangeKind::New, flow(1));
  master->flush();
  ASSERT_TRUE(master->last_flows_sent());
  EXPECT_EQ(*master->last_flows_sent(), clock.t);
  settle();
  EXPECT_EQ(beats, after_round + 1);
  EXPECT_TRUE(btable.has(flow(1)));

  disconnect();
  EXPECT_FALSE(master->peer_takes_flows_as_heartbeats()) << "forgotten with the connection";
  to_backup.up = to_master.up = true;
  master->on_connected();
  wire::Frame old_hello;  // an older peer's: no flows_are_heartbeats
  old_hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  old_hello.mutable_hello()->set_node("fw2");
  EXPECT_TRUE(master->on_frame(old_hello));
  EXPECT_FALSE(master->peer_takes_flows_as_heartbeats());
}

TEST_F(SinkTest, HelloSaysFlowsAreTakenAsHeartbeats) {
  ASSERT_FALSE(link.sent.empty());
  ASSERT_TRUE(link.sent.front().has_hello());
  EXPECT_TRUE(link.sent.front().hello().flows_are_heartbeats());
  EXPECT_FALSE(link.sent.front().hello().has_speaks_every_ms()) << "its owner promised nothing";
}

// The Hello promises a frame every so often only when the owner keeps it (SyncService:
// PeerSilence::kSpeakEvery), and the peer's promise is known until the connection ends.
TEST_F(PairTest, HelloCarriesThePromiseToSpeakAndThePeersIsKeptPerConnection) {
  auto mo = opts("fw1", "fw2");
  mo.speaks_every = std::chrono::milliseconds(1000);
  master = std::make_unique<Replicator>(mo, mtable, mtable, to_backup);
  EXPECT_EQ(backup->peer_speaks_every().count(), 0) << "no Hello yet";
  connect();
  EXPECT_EQ(backup->peer_speaks_every().count(), 1000);
  EXPECT_EQ(master->peer_speaks_every().count(), 0) << "fw2's owner promised nothing";
  disconnect();
  EXPECT_EQ(backup->peer_speaks_every().count(), 0) << "forgotten with the connection";
}

// A send can close the link from inside (SyncLink's queue over its bound calls its close
// handler at once): the replicator's on_disconnected() flushes what is pending, and must not
// find the changes being sent still pending and send them again, out of order.
TEST_F(PairTest, ALinkClosedInsideASendKeepsEachChangeOnceAndInOrder) {
  connect();
  const auto sent_before = master->counters().entries_sent;
  to_backup.close_inside_next_flows = [this] { master->on_disconnected(); };
  change(FlowChangeKind::New, flow(1));
  change(FlowChangeKind::New, flow(2));
  master->flush();
  EXPECT_EQ(master->counters().entries_sent, sent_before + 2) << "each change in one frame";
  // Reconnected: the resume (or the round) brings the backup to the master's table, with no
  // sequence gap from frames kept out of order.
  disconnect();
  connect();
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->counters().sequence_gaps, 0u);
}

// Two Masters met and only the peer holds the state: the loser, now a sink, asks for a round
// on the same connection (Hello.stepped_down), and gets one at once, never a resume: its
// table is its own, not the source's (lab rejoin_frozen).
// Two Masters: our summary reaches a peer that is Master itself and drops it, so it never
// answers. When the peer steps down, its round must still start at once, not wait for the
// unanswered summary's bound (a failover meanwhile would break sessions).
TEST_F(PairTest, ASteppedDownPeerGetsItsRoundAtOnceAfterASummaryItDropped) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  settle();
  backup->set_role(Replicator::Role::Source);  // the peer took over: two Masters
  mtable.put(flow(2));
  master->on_overrun();  // a summary the peer, as a source, ignores
  settle();
  const uint64_t rounds = master->reconcile_counters().rounds_started;
  backup->set_role(Replicator::Role::Sink);
  backup->stepped_down();
  settle();
  EXPECT_EQ(master->reconcile_counters().rounds_started, rounds + 1);
  EXPECT_EQ(master->reconcile_counters().causes.at("peer stepped down"), 1u);
  EXPECT_TRUE(btable.same_as(mtable));
}

TEST_F(PairTest, ASinkThatSteppedDownForThePeersStateGetsARoundAtOnce) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  settle();
  const uint64_t rounds = master->reconcile_counters().rounds_started;
  btable.apply({FlowChangeKind::New, flow(7)});  // the loser's own, from its time as Master
  backup->stepped_down();
  ASSERT_FALSE(to_master.kinds.empty());
  EXPECT_EQ(to_master.kinds.back(), wire::Frame::kHello);
  // The source sends a frame of its old session before it reads the Hello: dropped, no gap,
  // no disconnect (the round covers it).
  change(FlowChangeKind::New, flow(2));
  master->flush();
  EXPECT_TRUE(to_backup.deliver(*backup));
  EXPECT_FALSE(btable.has(flow(2)));
  settle();
  EXPECT_EQ(master->reconcile_counters().rounds_started, rounds + 1);
  EXPECT_EQ(master->reconcile_counters().causes.at("peer stepped down"), 1u);
  EXPECT_EQ(master->counters().resumes, 0u);
  EXPECT_FALSE(btable.has(flow(7))) << "the round removed what the source does not hold";
  EXPECT_TRUE(btable.has(flow(2)));
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_EQ(backup->counters().sequence_gaps, 0u);
  // Later changes go in the round's new session, applied as usual.
  change(FlowChangeKind::New, flow(3));
  master->flush();
  settle();
  EXPECT_TRUE(btable.has(flow(3)));
  // A source does not ask: nothing is sent.
  const size_t sent = to_backup.kinds.size();
  master->stepped_down();
  EXPECT_EQ(to_backup.kinds.size(), sent);
}

// A resume resends frames, not a round's repair. Events lost in an overrun while the link was
// down (nobody to reconcile with then) are repaired by a round right after the resume, not by
// the periodic one 30 s later.
TEST_F(PairTest, AnOverrunWhileTheLinkIsDownIsRepairedAfterTheResume) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  settle();  // applied: the reconnect can resume
  disconnect();
  mtable.put(flow(2));  // an event lost in the overrun
  master->on_overrun();
  connect();
  EXPECT_EQ(master->counters().resumes, 1u);
  EXPECT_EQ(master->reconcile_counters().causes.at("overrun"), 1u);
  EXPECT_TRUE(btable.same_as(mtable));
}

// The same on an idle pair: no frame of the peer's shows the gap after the step-down, so the
// node that stepped down asks at once (a Hello, as a reconnect's) and the peer resumes from
// the first frame it dropped, on the same connection.
TEST_F(PairTest, AnIdleNodeThatSteppedDownAsksForWhatItDroppedAtOnce) {
  for (uint16_t p = 1; p <= 5; ++p) mtable.put(flow(p));
  connect();
  backup->set_role(Replicator::Role::Source);  // fw2 took over; fw1 (master) does not know yet
  for (const auto& [kind, e] : {std::pair{FlowChangeKind::Destroy, flow(2)},
                                std::pair{FlowChangeKind::New, flow(30)}}) {
    btable.apply({kind, e});
    backup->on_local_change({kind, e});
    backup->flush();
  }
  settle();
  ASSERT_EQ(master->counters().flows_ignored_as_master, 2u);
  master->set_role(Replicator::Role::Sink);  // fw1 steps down; fw2 sends nothing more
  master->ask_for_what_was_ignored();
  settle();
  EXPECT_EQ(backup->counters().resumes, 1u);
  EXPECT_EQ(backup->counters().frames_resent, 2u);
  EXPECT_EQ(master->counters().sequence_gaps, 0u) << "no reconnect needed";
  EXPECT_FALSE(mtable.has(flow(2)));
  EXPECT_TRUE(mtable.has(flow(30)));
  EXPECT_TRUE(mtable.same_as(btable));
}

// The link drops after an overrun's summary went out, before the sink's request came back: the
// resume runs the round again (the event lost in the overrun would wait 30 s otherwise).
TEST_F(PairTest, ARoundWhoseSummaryWasCutOffRunsAgainAfterTheResume) {
  connect();
  change(FlowChangeKind::New, flow(1));
  master->flush();
  settle();
  mtable.put(flow(2));  // an event lost in the overrun
  master->on_overrun();
  ASSERT_FALSE(to_backup.kinds.empty());
  EXPECT_EQ(to_backup.kinds.back(), wire::Frame::kDigestSummary);
  disconnect();  // the summary is lost with the connection
  connect();
  EXPECT_EQ(master->counters().resumes, 1u);
  EXPECT_EQ(master->reconcile_counters().causes.at("overrun, again after a resume"), 1u);
  EXPECT_TRUE(btable.same_as(mtable));
}

// A rerun cut short too runs once more, named as the first rerun was.
TEST_F(PacedRepairTest, ARoundCutTwiceRunsAgainNamedOnce) {
  ASSERT_TRUE(into_the_answer());
  disconnect();
  link_up();  // reconnected: Hellos, the resume, the rerun's start
  for (int i = 0; i < 4; ++i) exchange();
  ASSERT_TRUE(master->repairing()) << "the rerun must still be running for this test";
  disconnect();
  connect();
  run(2000);
  EXPECT_EQ(master->counters().resumes, 2u);
  EXPECT_EQ(master->reconcile_counters().causes.at("connect, again after a resume"), 2u);
  EXPECT_EQ(master->reconcile_counters().causes.size(), 2u) << "connect, and its rerun";
  EXPECT_TRUE(btable.same_as(mtable));
}

// The link drops in the middle of the first sync's answer. The reconnect resumes (the answer's
// frames are in the session), and the round runs again: the rest of the answer, and its
// RepairEnd, would otherwise never come, and the sink would hold part of the table.
TEST_F(PacedRepairTest, ARepairCutShortByADisconnectRunsAgainAfterTheResume) {
  ASSERT_TRUE(into_the_answer());
  disconnect();
  connect();
  run(2000);
  EXPECT_EQ(master->counters().resumes, 1u);
  EXPECT_EQ(master->reconcile_counters().causes.at("connect, again after a resume"), 1u)
      << "the cut round again";
  EXPECT_TRUE(btable.same_as(mtable));
  EXPECT_TRUE(backup->holds_source_state());
  // Once a round has ended, a resume runs none.
  disconnect();
  connect();
  run(2000);
  EXPECT_EQ(master->counters().resumes, 2u);
  EXPECT_EQ(master->reconcile_counters().rounds_started, 2u);
}

// The link's close handler ran inside the send of an answer's last frame (SyncLink's queue
// over its bound closed at once, before it deferred the close), and on_disconnected() resets
// the reconciler: finish_answer() then read the answer it had just freed. The sanitizer
// build of the unit tests (scripts/test) turns that into a failure.
TEST(ReconcilerAnswer, ALinkClosedInsideTheLastFrameLeavesNothingDangling) {
  FakeTable table;
  table.put(flow(1));
  table.put(flow(2));
  LocalFilter filter;
  Reconciler r(table, table, filter);
  wire::RepairRequest request;
  request.set_round(9);
  for (uint32_t b = 0; b < kBuckets; ++b) request.add_buckets(b);
  std::vector<wire::Frame> control;
  r.start_answer(request, [&](const wire::Frame& f) { control.push_back(f); });
  size_t changes_sent = 0;
  const auto close_inside = [&](std::vector<FlowChange>& changes) {
    changes_sent += changes.size();
    r.reset();  // the close handler, from inside the send
  };
  // Both entries fit one frame (of 3), so it goes out in finish_answer.
  size_t budget = 2048;
  EXPECT_EQ(r.pump_answer(3, budget, close_inside,
                          [&](const wire::Frame& f) { control.push_back(f); }),
            Reconciler::Pumped::kDone);
  EXPECT_FALSE(r.answering());
  EXPECT_EQ(changes_sent, 2u);
  ASSERT_EQ(control.size(), 2u);  // RepairBegin, RepairEnd
  EXPECT_EQ(control[1].repair_end().round(), 9u);
  EXPECT_EQ(control[1].repair_end().entries(), 2u);
}

// An older sink compares in 4096 buckets and sends no bucket_count. Answered in our 65536,
// its request for bucket b would miss 15 of every 16 of b's entries, and at RepairEnd it
// deletes what the answer left untouched in b: the answer goes in the sink's partition.
TEST(ReconcilerAnswer, AnOlderSinksBucketsAreAnsweredInItsPartition) {
  FakeTable table;
  for (uint16_t p = 1; p <= 3000; ++p) table.put(flow(p));
  LocalFilter filter;
  Reconciler r(table, table, filter);
  const uint32_t b = bucket_of(key_of(flow(1)), kBucketsBefore65536);
  size_t expected = 0;
  for (const auto& [k, e] : table.entries) expected += bucket_of(k, kBucketsBefore65536) == b;
  ASSERT_GT(expected, 0u);
  wire::RepairRequest request;  // no bucket_count: an older sink
  request.set_round(3);
  request.add_buckets(b);
  r.start_answer(request, [](const wire::Frame&) {});
  std::vector<FlowChange> sent;
  size_t budget = SIZE_MAX;
  while (r.pump_answer(
             100, budget,
             [&](std::vector<FlowChange>& c) { sent.insert(sent.end(), c.begin(), c.end()); },
             [](const wire::Frame&) {}) != Reconciler::Pumped::kDone) {
  }
  EXPECT_EQ(sent.size(), expected);
  for (const FlowChange& c : sent) EXPECT_EQ(bucket_of(key_of(c.entry), kBucketsBefore65536), b);
}

// A periodic summary of another session than the frames the sink noted (a new numbering
// since): their seqs say nothing about it, and nothing is left.
TEST(ReconcilerSummary, ChangesOfAnotherSessionLeaveNothing) {
  for (const uint64_t summary_session : {uint64_t{7}, uint64_t{8}}) {
    SCOPED_TRACE(summary_session);
    FakeTable table;
    table.put(flow(1));
    LocalFilter filter;
    Reconciler r(table, table, filter);
    r.note_applied({FlowChangeKind::New, flow(1)}, true, 7, 50);
    wire::DigestSummary summary;  // an empty source table: flow(1)'s bucket differs
    summary.set_round(1);
    summary.set_bucket_count(kBuckets);
    for (uint32_t i = 0; i < kBuckets; ++i) summary.add_digests(0);
    summary.set_session(summary_session);
    summary.set_changes_from_seq(40);
    const wire::Frame f = r.on_summary(summary, 0, 1 << 20);
    const bool left = summary_session == 7;
    EXPECT_EQ(f.repair_request().buckets_size(), left ? 0 : 1);
    EXPECT_EQ(r.counters().buckets_left_in_flux, left ? 1u : 0u);
  }
}

// A dump that met entries it could not carry (the kernel adapter counts them as it parses):
// every round that reads one adds them to dump_uncarried, shown in status.
TEST(ReconcilerDump, EntriesADumpCouldNotCarryAreCounted) {
  struct PartlyUnreadable : ConntrackDump {
    std::vector<FlowEntry> entries;
    bool done = false;
    bool next(std::vector<FlowEntry>& out, std::error_code& ec) override {
      ec.clear();
      if (done) return false;
      out.insert(out.end(), entries.begin(), entries.end());
      done = true;
      return false;
    }
    uint64_t uncarried() const override { return 2; }
  };
  struct Reader : FakeTable {
    std::unique_ptr<ConntrackDump> open_dump(std::error_code& ec) override {
      ec.clear();
      auto d = std::make_unique<PartlyUnreadable>();
      for (const auto& [k, e] : entries) d->entries.push_back(e);
      return d;
    }
  };
  Reader table;
  table.put(flow(1));
  LocalFilter filter;
  Reconciler r(table, table, filter);
  const wire::Frame summary = r.begin_round("periodic");
  ASSERT_TRUE(summary.has_digest_summary());
  EXPECT_EQ(r.counters().dump_uncarried, 2u);
  wire::RepairRequest request;  // an answer reads the table again
  request.set_round(summary.digest_summary().round());
  for (uint32_t b = 0; b < kBuckets; ++b) request.add_buckets(b);
  r.start_answer(request, [](const wire::Frame&) {});
  size_t budget = SIZE_MAX;
  while (r.pump_answer(100, budget, [](std::vector<FlowChange>&) {}, [](const wire::Frame&) {}) !=
         Reconciler::Pumped::kDone) {
  }
  EXPECT_EQ(r.counters().dump_uncarried, 4u);
}

// The sink lists entries near expiry by key: the original tuple and the zone, which is all
// the source reads. The reply goes too (the mirror) only to a peer that does not imply it,
// and a listed entry reads back with the key it was listed under.
// The request is one frame: the expiring list gets what the bucket list leaves of the bound
// (65536 buckets can take ~180 KiB; a request over the frame limit resets the link, and the
// round after the reconnect would build the same one).
TEST(ReconcilerSummary, TheExpiringListLeavesRoomForTheBuckets) {
  FakeTable table;
  TableDigest theirs;
  for (uint16_t p = 1; p <= 4000; ++p) {
    FlowEntry e = flow(p);
    e.timeout_s = 5;
    table.put(e);
    if (p > 2000) theirs.add(e);  // the first 2000 flows' buckets differ
  }
  LocalFilter filter;
  Reconciler r(table, table, filter);
  wire::DigestSummary summary;
  summary.set_round(3);
  summary.set_bucket_count(kBuckets);
  for (uint64_t d : theirs.digest) summary.add_digests(d);
  constexpr size_t kBound = 40000;
  const wire::Frame f = r.on_summary(summary, 80, kBound);
  ASSERT_TRUE(f.has_repair_request());
  EXPECT_GT(f.repair_request().buckets_size(), 1000);
  EXPECT_GT(f.repair_request().expiring_size(), 100);
  EXPECT_LE(f.repair_request().ByteSizeLong(), kBound);
}

TEST(ReconcilerSummary, ExpiringEntriesAreListedByKey) {
  for (const bool implies : {true, false}) {
    SCOPED_TRACE(implies ? "peer implies replies" : "older peer");
    FakeTable table;
    FlowEntry e = flow(1);
    e.zone = 7;
    e.timeout_s = 5;
    e.mark = 42;
    table.put(e);
    LocalFilter filter;
    Reconciler r(table, table, filter);
    TableDigest same;  // the source's digests equal ours: nothing to repair
    same.add(e);
    wire::DigestSummary summary;
    summary.set_round(3);
    summary.set_bucket_count(kBuckets);
    for (uint64_t d : same.digest) summary.add_digests(d);
    const wire::Frame f = r.on_summary(summary, 80, kMaxFrameBytes, implies);
    ASSERT_TRUE(f.has_repair_request());
    EXPECT_EQ(f.repair_request().buckets_size(), 0);
    ASSERT_EQ(f.repair_request().expiring_size(), 1);
    const wire::Flow& w = f.repair_request().expiring(0);
    EXPECT_EQ(w.has_reply(), !implies);
    EXPECT_EQ(w.mark(), 0u) << "the key only";
    EXPECT_EQ(w.timeout_s(), 0u) << "the key only";
    std::string error;
    const auto back = from_wire(w, error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(key_of(*back), key_of(e));
  }
}

// A FlowBatch numbered 0 (session or seq) is no source's: rejected, and the link reset. Seq 0
// would make every later frame of its session look applied already.
TEST_F(SinkTest, FlowBatchNumberedZeroIsRejected) {
  EXPECT_FALSE(rep.on_frame(batch_of(7, 0, {{FlowChangeKind::New, flow(1)}})));
  EXPECT_FALSE(rep.on_frame(batch_of(0, 1, {{FlowChangeKind::New, flow(1)}})));
  EXPECT_EQ(rep.counters().frames_rejected, 2u);
  EXPECT_FALSE(table.has(flow(1)));
  EXPECT_TRUE(rep.on_frame(batch_of(7, 1, {{FlowChangeKind::New, flow(1)}})));
  EXPECT_TRUE(table.has(flow(1)));
}

// An ack of another session, or past the last frame sent, releases nothing kept for a resume.
TEST_F(PairTest, AnAckOfAnotherSessionOrOfFramesNeverSentIsIgnored) {
  connect();  // an empty table: the connect round sends no FlowBatch, the next one is seq 1
  change(FlowChangeKind::New, flow(1));
  master->flush();  // sent, not yet delivered
  const size_t kept = master->unacked_bytes();
  ASSERT_GT(kept, 0u);
  const uint64_t rejected = master->counters().frames_rejected;
  wire::Frame stale;  // seq 1 of an earlier session, in flight across a new numbering
  stale.mutable_ack()->set_seq(1);
  stale.mutable_ack()->set_session(12345);
  EXPECT_TRUE(master->on_frame(stale));
  EXPECT_EQ(master->counters().frames_rejected, rejected) << "routine: ignored quietly";
  wire::Frame beyond;  // past the last frame sent
  beyond.mutable_ack()->set_seq(1000);
  EXPECT_TRUE(master->on_frame(beyond));
  EXPECT_EQ(master->unacked_bytes(), kept);
  EXPECT_EQ(master->counters().frames_rejected, rejected + 1);
  settle();  // the backup's own ack, of our session, releases it
  EXPECT_EQ(master->unacked_bytes(), 0u);
  EXPECT_TRUE(btable.same_as(mtable));
}

// The event pump holding a stream's events (sync/event_hold.h) in front of a real
// replicator, with events from a fake source whose descriptor (an eventfd) the pump waits on
// as on the netlink socket.
class FakeEvents : public ConntrackEvents {
 public:
  int fd() const override { return fd_.get(); }
  std::error_code drain(const std::function<void(const FlowChange&)>& on_change) override {
    uint64_t count = 0;
    if (::read(fd_.get(), &count, sizeof count) < 0) return {};
    auto changes = std::exchange(queued, {});
    for (const auto& c : changes) on_change(c);
    return {};
  }
  void arrive(const FlowChange& c) {
    queued.push_back(c);
    const uint64_t one = 1;
    EXPECT_EQ(::write(fd_.get(), &one, sizeof one), 8);
  }
  std::vector<FlowChange> queued;

 private:
  UniqueFd fd_{eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
};

class EventPumpTest : public PairTest {
 protected:
  void SetUp() override {
    PairTest::SetUp();
    connect();
    // A 100 ms gap: the test's events, ~1 ms apart, are a stream however slow the machine.
    pump = std::make_unique<EventPump>(
        io, *master, 0, std::chrono::milliseconds(100), 2,
        [this](size_t, std::error_code&) -> std::unique_ptr<ConntrackEvents> {
          auto e = std::make_unique<FakeEvents>();
          events = e.get();
          return e;
        });
    ASSERT_FALSE(pump->start());
    ASSERT_NE(events, nullptr);
  }
  size_t flow_frames() const {
    return static_cast<size_t>(
        std::count(to_backup.kinds.begin(), to_backup.kinds.end(), wire::Frame::kFlows));
  }
  // A new flow on the Master: its event arrives, and the loop runs until the pump read it.
  void arrive(uint16_t port) {
    const FlowChange c{FlowChangeKind::New, flow(port)};
    mtable.apply(c);
    events->arrive(c);
    for (int i = 0; i < 2000 && !events->queued.empty(); ++i) {
      io.restart();
      io.run_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(events->queued.empty()) << "the pump never read the event";
  }

  boost::asio::io_context io;
  FakeEvents* events = nullptr;  // owned by the pump
  std::unique_ptr<EventPump> pump;
};

TEST_F(EventPumpTest, AStreamGoesInPairsAndWhatIsHeldGoesAtTheHeartbeatOrTheStop) {
  const size_t before = flow_frames();
  uint16_t port = 1;
  for (unsigned i = 0; i < EventHold::kStreak; ++i) arrive(port++);
  EXPECT_EQ(flow_frames(), before + EventHold::kStreak) << "each at once: no stream yet";
  arrive(port++);
  EXPECT_EQ(flow_frames(), before + EventHold::kStreak) << "held for its successor";
  EXPECT_EQ(master->pending_count(), 1u);
  arrive(port++);
  EXPECT_EQ(flow_frames(), before + EventHold::kStreak + 1) << "the pair, in one frame";
  EXPECT_EQ(master->pending_count(), 0u);

  arrive(port++);  // the stream's last: no successor comes
  ASSERT_EQ(master->pending_count(), 1u);
  pump->send_held();  // SyncService's heartbeat does this every 5 ms
  EXPECT_EQ(master->pending_count(), 0u);
  EXPECT_EQ(flow_frames(), before + EventHold::kStreak + 2);

  arrive(port++);
  ASSERT_EQ(master->pending_count(), 1u);
  pump->stop();  // stepping down: the replicator would drop what is held with its role
  EXPECT_EQ(master->pending_count(), 0u);
  EXPECT_EQ(flow_frames(), before + EventHold::kStreak + 3);
  settle();
  EXPECT_TRUE(btable.same_as(mtable));
}

}  // namespace
}  // namespace fwha::sync
