#include "sync/replicator.h"

#include <cerrno>
#include <limits>
#include <random>
#include <utility>

#include "fwha/vrrp_numbers.h"
#include "sync/flow_wire.h"
#include "sync/frame_codec.h"
#include "util/log.h"

namespace fwha::sync {
namespace {

// Added to the reconciliation interval for the sink's timeout slack (see apply_changes).
constexpr uint32_t kExpiryMarginS = 10;
// A RepairRequest is one frame: its expiring list gets all of the frame limit but 64 KiB, less
// what the bucket list takes (65536 packed buckets: up to ~180 KiB, computed from the
// encoding; finish_summary). Listed by key, that is ~80k IPv6 entries per round (ICMPv6,
// counted in the unit test) or ~150k IPv4 (estimated from the encoding); a whole entry each
// in half a frame was ~20k IPv6 or ~35k IPv4. An active UDP stream's copy falls under the
// threshold about once every three rounds (120 s + slack, threshold 2 x slack), so that is
// room for a few hundred thousand.
constexpr size_t kMaxExpiringBytesPerRound = kMaxFrameBytes - 64 * 1024;

uint64_t random_session() {
  std::random_device rd;
  uint64_t s = (uint64_t{rd()} << 32) | rd();
  return s == 0 ? 1 : s;
}

}  // namespace

bool LocalFilter::skip(const FlowEntry& e) const {
  if (e.original.l4proto == kIpProtoVrrp) return true;
  for (const auto& a : addresses) {
    if (e.original.src == a || e.original.dst == a) return true;
  }
  return false;
}

const char* to_string(Replicator::Role role) {
  switch (role) {
    case Replicator::Role::Sink: return "sink";
    case Replicator::Role::Source: return "source";
  }
  return "?";
}

Replicator::Replicator(Options options, ConntrackWriter& writer, ConntrackReader& reader,
                       FrameTransport& transport)
    : options_(std::move(options)),
      writer_(writer),
      reader_(reader),
      transport_(transport),
      reconcile_(writer, reader, filter_) {
  if (!options_.new_session) options_.new_session = random_session;
}

void Replicator::set_role(Role role) {
  if (role == role_) return;
  log::info("sync", std::string("replication role ") + to_string(role_) + " -> " +
                        to_string(role));
  role_ = role;
  reset_source_state();
  reconcile_.reset();
  summary_out_ = 0;
  promotion_round_at_.reset();
  if (role_ == Role::Source) {
    // A new Master owns the truth: a new session (the peer cannot resume the old one), and
    // if the peer is there, a round brings it in line now.
    session_ = options_.new_session();
    if (transport_.connected() && peer_hello_seen_) {
      promotion_round_at_ = options_.now() + options_.promotion_round_delay;
      last_round_ = options_.now();  // the periodic round counts from this one
    }
  }
}

void Replicator::reset_source_state() {
  pending_.clear();
  peer_knows_session_ = false;
  new_numbering(0);
}

// Source: nothing in flight or kept for a resume, seq from 1 in `session` (0: none yet).
void Replicator::new_numbering(uint64_t session) {
  unacked_.clear();
  inflight_bytes_ = 0;
  retained_bytes_ = 0;
  resumable_ = true;
  deferred_round_.clear();
  round_owed_.clear();  // a new numbering comes with a round of its own
  owed_round_id_ = 0;
  unresumable_cause_.clear();
  kept_frames_imply_reply_ = false;
  session_ = session;
  next_seq_ = 1;
}

void Replicator::bulk_work_starts() {
  if (options_.on_bulk_work) options_.on_bulk_work();
}

uint32_t Replicator::timeout_slack_s() const {
  return static_cast<uint32_t>(
             std::chrono::duration_cast<std::chrono::seconds>(options_.reconcile_interval)
                 .count()) +
         kExpiryMarginS;
}

std::chrono::milliseconds Replicator::lag() const {
  if (unacked_.empty()) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(options_.now() -
                                                               unacked_.front().sent_at);
}

// --- source ------------------------------------------------------------------------------

void Replicator::on_local_change(const FlowChange& change) {
  if (role_ != Role::Source || !options_.replicate) return;
  if (filter_.skip(change.entry)) {
    ++counters_.entries_filtered;
    return;
  }
  if (options_.suppress_echoes && echo_.is_echo(change, options_.now())) {
    ++counters_.echoes_suppressed;
    return;
  }
  if (!link_ready()) {
    // A reconnect that resumes skips the round, so a change made while the link is down goes
    // into the frames the resume resends (held, not sent). Without them no resume may happen:
    // the connect round covers the change then.
    if (!resumable_) return;
    if (!peer_knows_session_) {
      resumable_ = false;  // the peer cannot resume a session it never saw anyway
      return;
    }
    ++counters_.changes_held_while_down;
  }
  pending_.push_back(change);
  if (pending_.size() >= options_.max_changes_per_frame) flush();
}

void Replicator::flush() {
  if (pending_.empty()) return;
  // Taken out first: a send can close the link (SyncLink's queue full), and on_disconnected()
  // flushes what is pending, which would send these changes a second time.
  std::swap(pending_, sending_);
  send_changes(sending_);
  sending_.clear();
}

// One Frame for every batch, and the batch inside it cleared, not the Frame: FlowBatch::Clear()
// keeps the change messages and their strings for the next batch (Frame::Clear() would delete
// its oneof member), so a batch is encoded without a malloc per entry (~6 each: change, flow,
// tuples, addresses). What stays allocated is bounded by max_changes_per_frame.
void Replicator::send_changes(const std::vector<FlowChange>& changes) {
  auto* batch = batch_frame_.mutable_flows();
  batch->Clear();
  batch->set_seq(next_seq_++);
  batch->set_session(session_);
  for (const auto& c : changes) to_wire(c, batch->add_changes(), peer_implies_reply_);
  if (peer_implies_reply_) kept_frames_imply_reply_ = true;
  counters_.entries_sent += changes.size();
  send_batch_frame(batch_frame_);
}

// Every FlowBatch is kept until acknowledged, so a reconnect can resume. The kept bytes are
// bounded: beyond the bound we give up resuming (the next connect reconciles instead) but
// still count what is in flight, which paces repairs and measures the lag.
bool Replicator::send_batch_frame(const wire::Frame& frame) {
  const uint64_t seq = frame.flows().seq();  // before the send, which may re-enter (flush())
  std::string encoded;
  append_frame(frame, encoded);
  // While the link is down (or the peer's Hello has not come yet) a frame is only kept: the
  // resume sends it, in order after the earlier ones.
  const bool ready = link_ready();
  const bool ok = ready && transport_.send_encoded(encoded);
  const Clock::time_point now = options_.now();
  if (ok) {
    ++counters_.frames_sent;
    last_flows_sent_ = now;
    peer_knows_session_ = true;
  } else if (ready) {
    ++counters_.send_failures;
  }
  const size_t bytes = encoded.size();
  inflight_bytes_ += bytes;
  if (resumable_) {
    retained_bytes_ += bytes;
    unacked_.push_back({seq, now, bytes, std::move(encoded)});
    if (retained_bytes_ > options_.max_unacked_bytes) {
      ++counters_.unacked_overflows;
      log::warning("sync", "peer is " + std::to_string(retained_bytes_) +
                               " bytes behind: it will be resynced by reconciliation");
      for (Unacked& u : unacked_) std::string().swap(u.encoded);
      retained_bytes_ = 0;
      resumable_ = false;
      unresumable_cause_ = "peer too far behind";
    }
  } else {
    unacked_.push_back({seq, now, bytes, {}});
  }
  return ok;
}

void Replicator::round_ended(uint64_t round) {
  // An older round's end (its summary was out when this one started) does not end this one.
  if (owed_round_id_ != 0 && round >= owed_round_id_) {
    round_owed_.clear();
    owed_round_id_ = 0;
  }
}

void Replicator::on_overrun(const std::string& what) {
  ++counters_.overruns;
  log::warning("sync", "conntrack events lost (" + what + "): reconciling with the peer");
  if (role_ != Role::Source) return;
  if (transport_.connected() && peer_hello_seen_) {
    flush();
    start_round("overrun");
  } else if (round_owed_.empty()) {
    round_owed_ = "overrun";  // the reconnect's round, or the one after its resume
    owed_round_id_ = 0;       // not opened yet
  }
}

bool Replicator::round_running() const {
  if (reconcile_.answering() || reconcile_.digesting()) return true;
  return summary_out_ != 0 && options_.now() - summary_out_at_ < kRoundAnswerBound;
}

void Replicator::start_deferred_round() {
  if (deferred_round_.empty() || round_running()) return;
  start_round(std::exchange(deferred_round_, {}));
}

void Replicator::start_round(const std::string& cause, bool all_differ) {
  if (!options_.replicate) return;
  last_round_ = options_.now();
  if (round_running()) {
    // One round at a time, from its summary to its end. A new summary while the sink
    // compares makes it start over (its dump is of the table before the new summary), and
    // while an answer runs the sink would compare against a table the answer has not
    // finished filling. Overruns every ~2 s (a flush each) then restarted every round and
    // none ended: the flush soak's standby filled up with stale entries. Started when this
    // round ends, and covers what was asked for meanwhile. A round for a loss (an overrun,
    // a peer too far behind) takes the place of a periodic one: a periodic round leaves
    // the buckets that changed meanwhile for later. The running round stays the owed one: a
    // resume runs it again, and that covers this one.
    if (deferred_round_.empty() || deferred_round_ == kPeriodicRound) deferred_round_ = cause;
    return;
  }
  round_owed_ = cause;
  owed_round_id_ = 0;
  deferred_round_.clear();  // this round, started after it was asked for, covers it
  if (summary_out_ != 0) {
    log::warning("sync", "reconciliation round " + std::to_string(summary_out_) +
                             ": no answer from " + options_.peer_name + " for " +
                             std::to_string(kRoundAnswerBound.count()) +
                             " s; starting another");
    summary_out_ = 0;
  }
  bulk_work_starts();
  if (options_.before_dump) options_.before_dump();
  flush();
  // Every change from here on goes in frames from next_seq_ on, and may cross the dumps.
  // Only a periodic round's sink leaves such buckets for later: the others run because
  // something was lost, and repair what differs now.
  ChangesInFlight in_flight;
  if (cause == kPeriodicRound) in_flight = {session_, next_seq_};
  if (!options_.defer) {
    const wire::Frame summary = reconcile_.begin_round(cause, all_differ, in_flight);
    owed_round_id_ = reconcile_.last_round_opened();
    send_summary(owed_round_id_, summary);
    return;
  }
  reconcile_.open_round(cause, all_differ, in_flight);
  owed_round_id_ = reconcile_.last_round_opened();
  step_round();
}

// A few thousand entries per step: a few milliseconds, then the loop's other handlers (the
// event pump, heartbeats, acks, a handover's answer) get their turn.
constexpr size_t kDumpStepEntries = 2048;

void Replicator::step_round() {
  if (!reconcile_.digesting()) return;  // reset meanwhile (role change, disconnect)
  if (auto summary = reconcile_.step_round(kDumpStepEntries)) {
    if (role_ == Role::Source) send_summary(reconcile_.last_round_opened(), *summary);
    return;
  }
  options_.defer([this] { step_round(); });
}

void Replicator::step_summary(uint64_t completed_before) {
  if (!reconcile_.comparing()) return;
  if (auto request = reconcile_.step_summary(kDumpStepEntries)) {
    if (transport_.connected()) transport_.send(*request);
    round_may_have_ended(completed_before);
    return;
  }
  options_.defer([this, completed_before] { step_summary(completed_before); });
}

// Sends the running repair answer on while the peer keeps up (or all of it, for a barrier).
// With options_.defer, a step that read kDumpStepEntries of the table gives the loop back
// and goes on from a posted step: an answer for a few buckets reads the whole table to
// find their entries, and the event socket, heartbeats and a handover must not wait for it.
void Replicator::pump_repair(bool ignore_window) {
  if (role_ != Role::Source) return;
  const auto send = [this](std::vector<FlowChange>& changes) { send_changes(changes); };
  const auto control = [this](const wire::Frame& f) { transport_.send(f); };
  const uint64_t answered = reconcile_.counters().answers_completed;
  const bool paced = options_.defer && !ignore_window;
  size_t budget = paced ? kDumpStepEntries : std::numeric_limits<size_t>::max();
  while (reconcile_.answering() && transport_.connected() &&
         (ignore_window || inflight_bytes_ < options_.repair_window_bytes)) {
    const auto pumped =
        reconcile_.pump_answer(options_.max_changes_per_frame, budget, send, control);
    if (pumped == Reconciler::Pumped::kDone) break;
    if (pumped == Reconciler::Pumped::kBudget && paced) {
      if (!answer_step_posted_) {
        answer_step_posted_ = true;
        options_.defer([this] {
          answer_step_posted_ = false;
          // (Ended meanwhile, or cut by a disconnect: nothing to go on with, and no round
          // to start on a link that is down.)
          if (reconcile_.answering() && transport_.connected()) pump_repair();
        });
      }
      break;
    }
  }
  // Ended, and its RepairEnd went out: the link is still up (a send over the queue's bound
  // dooms the connection, and connected() says so at once).
  if (reconcile_.counters().answers_completed != answered && transport_.connected()) {
    round_ended(reconcile_.last_round_answered());
  }
  start_deferred_round();
}

void Replicator::send_summary(uint64_t round, const wire::Frame& summary) {
  if (!transport_.connected() || !transport_.send(summary)) return;
  summary_out_ = round;
  summary_out_at_ = options_.now();
}

void Replicator::tick() {
  if (role_ != Role::Source || !transport_.connected() || !peer_hello_seen_) return;
  pump_repair();
  if (promotion_round_at_) {
    if (options_.now() < *promotion_round_at_) return;  // nor a periodic one meanwhile
    promotion_round_at_.reset();
    start_round("promotion");
  }
  if (options_.now() - last_round_ >= options_.reconcile_interval) start_round(kPeriodicRound);
  check_lag();
}

void Replicator::check_lag() {
  const auto l = lag();
  if (l >= options_.stall_after && !stall_alerted_) {
    stall_alerted_ = true;
    log::error("sync", "replication stalled: the peer acknowledged nothing for " +
                           std::to_string(l.count()) + " ms (queue " +
                           std::to_string(inflight_bytes_) + " bytes)");
  } else if (l >= options_.lag_alert && !lag_alerted_ && !reconcile_.answering()) {
    // (During a repair answer the window itself holds frames for a while: expected.)
    lag_alerted_ = true;
    log::warning("sync", "replication lagging: oldest unacknowledged frame " +
                             std::to_string(l.count()) + " ms old");
  } else if (l < options_.lag_alert && (lag_alerted_ || stall_alerted_)) {
    lag_alerted_ = stall_alerted_ = false;
    log::notice("sync", "replication caught up");
  }
}

void Replicator::on_ack(const wire::Ack& ack) {
  while (!unacked_.empty() && unacked_.front().seq <= ack.seq()) {
    inflight_bytes_ -= unacked_.front().bytes;
    retained_bytes_ -= unacked_.front().encoded.size();
    unacked_.pop_front();
  }
}

// --- link ----------------------------------------------------------------------------------

void Replicator::on_connected() {
  peer_hello_seen_ = false;
  acked_seq_ = 0;
  send_hello(false);
}

void Replicator::stepped_down() {
  if (role_ != Role::Sink || !options_.replicate) return;
  // Our table is our own, not the peer's: nothing of its session is to be resumed. Its frames
  // still in flight are dropped (the round covers them; applied, the first would leave a gap
  // and a reconnect), and every Hello from now on, this one or a reconnect's, or one to an
  // older peer that ignores stepped_down, offers no resume and so gets a round.
  discard_session_ = ignored_session_ != 0 ? ignored_session_ : applied_session_;
  applied_session_ = 0;
  applied_seq_ = 0;
  acked_seq_ = 0;
  ignored_session_ = 0;
  ignored_from_seq_ = 0;
  if (!link_ready()) return;  // the reconnect's Hello asks
  log::info("sync", "stepped down for the peer's Master: asking " + options_.peer_name +
                        " for a reconciliation round");
  send_hello(true);
}

void Replicator::ask_for_what_was_ignored() {
  if (role_ != Role::Sink || !options_.replicate || ignored_session_ == 0 ||
      ignored_from_seq_ == 0 || !link_ready()) {
    return;
  }
  // The anchors on_flows() would take from the peer's next frame, taken now.
  applied_session_ = ignored_session_;
  applied_seq_ = ignored_from_seq_ - 1;
  acked_seq_ = applied_seq_;
  ignored_session_ = 0;
  ignored_from_seq_ = 0;
  log::info("sync", "stepped down: asking " + options_.peer_name +
                        " to resend its frames from seq " + std::to_string(applied_seq_ + 1) +
                        ", dropped while both were Master");
  send_hello(false);
}

void Replicator::send_hello(bool stepped_down) {
  wire::Frame hello;
  auto* h = hello.mutable_hello();
  if (stepped_down) h->set_stepped_down(true);
  h->set_protocol_version(kProtocolVersion);
  h->set_node(options_.node_name);
  h->set_session(role_ == Role::Source ? session_ : 0);
  h->set_applied_session(applied_session_);
  h->set_applied_seq(applied_seq_);
  if (auto n = reader_.count()) h->set_table_entries(*n);
  if (options_.vrrp_priority != 0) h->set_vrrp_priority(options_.vrrp_priority);
  h->set_flows_are_heartbeats(true);
  h->set_implied_reply(true);
  if (options_.speaks_every.count() > 0) {
    h->set_speaks_every_ms(static_cast<uint32_t>(options_.speaks_every.count()));
  }
  transport_.send(hello);
}

void Replicator::on_disconnected() {
  peer_hello_seen_ = false;
  peer_flows_are_heartbeats_ = false;
  peer_speaks_every_ = std::chrono::milliseconds(0);
  peer_implies_reply_ = false;
  // Changes not yet in a frame go into one, kept for the resume (on_local_change), or no
  // resume may happen.
  if (!pending_.empty()) {
    if (peer_knows_session_ && resumable_) {
      flush();
    } else {
      resumable_ = false;
    }
  }
  pending_.clear();
  barrier_done_ = nullptr;
  awaited_barrier_token_ = 0;
  reconcile_.reset();
  summary_out_ = 0;  // the round went with the connection (round_owed_ runs it again)
}

bool Replicator::on_hello(const wire::Hello& hello) {
  if (hello.protocol_version() != kProtocolVersion) {
    ++counters_.frames_rejected;
    log::error("sync", "peer speaks protocol version " + std::to_string(hello.protocol_version()) +
                           ", we speak " + std::to_string(kProtocolVersion) + ": disconnecting");
    return false;
  }
  if (hello.node() != options_.peer_name) {
    ++counters_.frames_rejected;
    log::error("sync", "peer introduced itself as '" + hello.node() + "', expected '" +
                           options_.peer_name + "': disconnecting");
    return false;
  }
  peer_hello_seen_ = true;
  // A peer that says Hello again on this connection (it stepped down, or asks for frames it
  // dropped as Master) was not comparing our last summary: a Master drops summaries, and
  // one promoted abandons its comparison. Waiting for its answer would hold its round back.
  summary_out_ = 0;
  peer_flows_are_heartbeats_ = hello.flows_are_heartbeats();
  peer_implies_reply_ = hello.implied_reply();
  peer_speaks_every_ = std::chrono::milliseconds(hello.speaks_every_ms());
  if (hello.has_vrrp_priority() && hello.vrrp_priority() >= 1 && hello.vrrp_priority() <= 255) {
    peer_vrrp_priority_ = hello.vrrp_priority();
  }
  // Sent again by a peer that gave way to our state (stepped_down()): its table is its own, so
  // it gets a round, never a resume, as a new connection that cannot resume does.
  const bool stepped_down = hello.stepped_down();
  log::notice("sync", "peer " + hello.node() +
                          (stepped_down ? " stepped down as Master: reconciling" : " connected"));
  if (role_ != Role::Source || !options_.replicate) return true;
  // Resume when the peer applied our session up to a seq we still hold everything after.
  const bool same_session =
      !stepped_down && hello.applied_session() == session_ && session_ != 0;
  const bool have_rest =
      unacked_.empty() ? hello.applied_seq() + 1 == next_seq_
                       : unacked_.front().seq <= hello.applied_seq() + 1;
  // Frames kept with replies left out cannot go to a peer that no longer reads them so (it
  // was downgraded meanwhile): a round instead.
  const bool kept_frames_readable = peer_implies_reply_ || !kept_frames_imply_reply_;
  peer_knows_session_ = true;  // resumed below, or the round's new session from here on
  if (same_session && resumable_ && have_rest && kept_frames_readable) {
    wire::Ack applied;
    applied.set_seq(hello.applied_seq());
    on_ack(applied);
    for (const auto& u : unacked_) {
      transport_.send_encoded(u.encoded);
      ++counters_.frames_resent;
    }
    ++counters_.resumes;
    log::notice("sync", "resumed after seq " + std::to_string(hello.applied_seq()) + ", resent " +
                            std::to_string(unacked_.size()) + " frames");
    // The resent frames carry changes, not a round's repair: a round the disconnect cut
    // short (the first sync's answer, say), or an overrun while the link was down, would
    // otherwise wait for the periodic round, and a failover meanwhile breaks its sessions.
    if (!round_owed_.empty()) {
      // (Never opened: an overrun while the link was down, or a round deferred behind an
      // answer. Opened: cut short, so it runs again, and status says so.)
      const std::string again = ", again after a resume";
      const std::string cause = owed_round_id_ == 0 || round_owed_.ends_with(again)
                                    ? round_owed_
                                    : round_owed_ + again;
      deferred_round_.clear();      // this round covers one asked for meanwhile
      promotion_round_at_.reset();  // and a promotion's
      log::notice("sync", "the round of cause " + round_owed_ +
                              " did not end before the link went down: running it now");
      start_round(cause);
    }
    return true;
  }
  // Cannot resume: a new numbering, and a round repairs whatever differs.
  std::string cause = "connect";
  if (stepped_down) {
    cause = "peer stepped down";
  } else if (!resumable_ && !unresumable_cause_.empty() && hello.applied_session() != 0) {
    // (A peer that restarted could not resume anyway: its round is a connect's.)
    cause = unresumable_cause_;
  }
  new_numbering(options_.new_session());
  promotion_round_at_.reset();  // this round covers it
  start_round(cause, peer_nearly_empty(hello));
  // It dropped our expectations too while it was Master.
  if (stepped_down && options_.on_peer_stepped_down) options_.on_peer_stepped_down();
  return true;
}

// A sink holding under a tenth of our entries (typically: just started, its own flows only)
// gets every bucket without a comparison: our digest dump would only confirm that.
bool Replicator::peer_nearly_empty(const wire::Hello& hello) {
  if (!hello.has_table_entries()) return false;
  const std::optional<uint64_t> ours = reader_.count();
  return ours && hello.table_entries() <= *ours / 10;
}

bool Replicator::on_frame(const wire::Frame& frame) {
  ++counters_.frames_received;
  if (frame.body_case() != wire::Frame::kHello && !peer_hello_seen_) {
    ++counters_.frames_rejected;
    log::warning("sync", "frame before hello from peer: disconnecting");
    return false;
  }
  switch (frame.body_case()) {
    case wire::Frame::kHello: return on_hello(frame.hello());
    case wire::Frame::kFlows: return on_flows(frame.flows());
    case wire::Frame::kAck:
      // Only a source's frames are acknowledged, and an ack of another session (in flight
      // across a new numbering or a step-down: routine) must not release frames of this one
      // kept for a resume: both ignored quietly. An ack past the last frame sent is no
      // peer's word on our frames: rejected.
      if (role_ != Role::Source ||
          (frame.ack().session() != 0 && frame.ack().session() != session_)) {
        return true;
      }
      if (frame.ack().seq() >= next_seq_) {
        if (log::should_log(++counters_.frames_rejected)) {
          log::warning("sync", "ack for seq " + std::to_string(frame.ack().seq()) +
                                   " ignored: the last frame sent is seq " +
                                   std::to_string(next_seq_ - 1));
        }
        return true;
      }
      on_ack(frame.ack());
      pump_repair();
      return true;
    case wire::Frame::kDigestSummary:
      if (role_ == Role::Sink && options_.replicate) {
        send_ack();  // what came before is applied: say so before the (slow) dump
        bulk_work_starts();
        // Refresh what would otherwise expire before the round after next.
        const uint64_t completed = reconcile_.counters().rounds_completed;
        if (options_.defer) {
          reconcile_.open_summary(frame.digest_summary(), 2 * timeout_slack_s(),
                                  kMaxExpiringBytesPerRound, peer_implies_reply_);
          step_summary(completed);
          return true;
        }
        auto request = reconcile_.on_summary(frame.digest_summary(), 2 * timeout_slack_s(),
                                             kMaxExpiringBytesPerRound, peer_implies_reply_);
        transport_.send(request);
        round_may_have_ended(completed);
      }
      return true;
    case wire::Frame::kRepairRequest:
      if (role_ == Role::Source) {
        const auto& r = frame.repair_request();
        if (r.round() >= summary_out_) summary_out_ = 0;  // (an older one: cut short before)
        if (r.buckets_size() == 0 && r.expiring_size() == 0) {  // in line
          round_ended(r.round());
          start_deferred_round();
          return true;
        }
        if (reconcile_.answering()) {
          log::warning("sync", "repair request while the previous answer is running: "
                               "answering the new one");
        }
        bulk_work_starts();
        if (options_.before_dump) options_.before_dump();
        flush();
        reconcile_.start_answer(r, [this](const wire::Frame& f) { transport_.send(f); });
        pump_repair();
      }
      return true;
    case wire::Frame::kRepairBegin:
      bulk_work_starts();
      reconcile_.on_repair_begin(frame.repair_begin());
      return true;
    case wire::Frame::kRepairEnd: {
      const uint64_t completed = reconcile_.counters().rounds_completed;
      reconcile_.on_repair_end(frame.repair_end());
      round_may_have_ended(completed);
      return true;
    }
    case wire::Frame::kBarrier: {
      // Frames are applied as they arrive, so everything before the barrier is in the kernel.
      send_ack();
      const uint64_t token = frame.barrier().token();
      auto answer = [this, token](bool took_over) {
        wire::Frame ack;
        ack.mutable_barrier_ack()->set_token(token);
        ack.mutable_barrier_ack()->set_took_over(took_over);
        transport_.send(ack);
      };
      if (frame.barrier().take_over() && options_.on_takeover_request) {
        options_.on_takeover_request(std::move(answer));
      } else {
        answer(false);
      }
      return true;
    }
    case wire::Frame::kBarrierAck:
      if (frame.barrier_ack().token() == awaited_barrier_token_ && barrier_done_) {
        awaited_barrier_token_ = 0;
        auto done = std::move(barrier_done_);
        barrier_done_ = nullptr;
        done(frame.barrier_ack().took_over());
      }
      return true;
    case wire::Frame::kHeartbeat:  // only a source (the Master) sends them
      if (options_.on_heartbeat) options_.on_heartbeat();
      return true;
    case wire::Frame::kHealth:
      if (options_.on_health) {
        const auto& h = frame.health();
        options_.on_health(h.degraded(), !h.has_holds_state() || h.holds_state());
      }
      return true;
    case wire::Frame::kExpectBatch:
      // Expectations have their own, unsequenced path (expect_sync.h); hello checked above.
      if (options_.on_expect_batch) options_.on_expect_batch(frame.expect_batch());
      return true;
    case wire::Frame::BODY_NOT_SET:
      // A newer peer may send types we do not know: count and skip, never fatal.
      if (log::should_log(++counters_.unknown_frames)) {
        log::warning("sync", "frame of unknown type skipped count=" +
                                 std::to_string(counters_.unknown_frames));
      }
      return true;
  }
  return true;
}

// --- sink ----------------------------------------------------------------------------------

bool Replicator::on_flows(const wire::FlowBatch& batch) {
  // A source numbers from 1 in a session that is never 0. Seq 0 would make every later frame
  // of its session look applied already (applied_seq_ = seq - 1 wraps), skipped unacked, and
  // a later round's RepairEnd would then remove copies the Master still has alive.
  if (batch.session() == 0 || batch.seq() == 0) {
    ++counters_.frames_rejected;
    log::warning("sync", "flow batch with session=" + std::to_string(batch.session()) +
                             " seq=" + std::to_string(batch.seq()) +
                             " (neither may be 0): disconnecting");
    return false;
  }
  if (role_ == Role::Source) {
    // Both sides believe they are Master; the election settles it. Writing the peer's view
    // over ours now could undo live state.
    if (batch.session() != ignored_session_) {
      ignored_session_ = batch.session();
      ignored_from_seq_ = batch.seq();
    }
    if (log::should_log(++counters_.flows_ignored_as_master)) {
      log::warning("sync", "peer sent flows while we are Master: ignored");
    }
    return true;
  }
  // Only a source sends flows: the peer's Master is alive (our Hello said we take them so).
  if (options_.on_heartbeat) options_.on_heartbeat();
  if (discard_session_ != 0) {
    if (batch.session() == discard_session_) return true;  // stepped_down(): the round's
    discard_session_ = 0;                                   // new session has begun
  }
  if (batch.session() != applied_session_) {
    if (batch.session() == ignored_session_ && ignored_from_seq_ > 0) {
      // We dropped this session's frames from ignored_from_seq_ on while we were Master. Taking
      // this later frame as its start would lose them for good (seen after a freeze: the
      // destroy of an old flow missing, its copy then kept a stale NAT binding): the gap below
      // makes us reconnect, and our Hello asks the source to resend from there.
      applied_session_ = ignored_session_;
      applied_seq_ = ignored_from_seq_ - 1;
    } else {
      // First frame of a new source session: numbering starts again.
      applied_session_ = batch.session();
      applied_seq_ = batch.seq() - 1;
    }
    acked_seq_ = applied_seq_;
  }
  if (batch.seq() <= applied_seq_) {
    ++counters_.duplicates;  // resent after a resume: already applied
    return true;
  }
  if (batch.seq() != applied_seq_ + 1) {
    ++counters_.sequence_gaps;
    ++counters_.frames_rejected;
    log::warning("sync", "flow batch seq=" + std::to_string(batch.seq()) + " after " +
                             std::to_string(applied_seq_) +
                             ": frames missing, reconnecting to resume");
    return false;
  }
  apply_changes(batch);
  applied_seq_ = batch.seq();
  return true;
}

void Replicator::apply_changes(const wire::FlowBatch& batch) {
  std::vector<FlowChange> changes;
  changes.reserve(static_cast<size_t>(batch.changes_size()));
  for (const auto& wc : batch.changes()) {
    ++counters_.entries_received;
    std::string error;
    auto change = from_wire(wc, error);
    if (!change) {
      if (log::should_log(++counters_.changes_rejected)) {
        log::warning("sync", "rejected flow change from peer: " + error);
      }
      continue;
    }
    // The Master removes what ends (destroy events, and reconciliation for any it missed),
    // so the copy may outlive the Master's timeout safely; it must never expire first. The
    // slack covers one reconciliation interval, after which the round refreshes entries
    // close to expiry with the Master's current timeout.
    // Saturating: a timeout near 2^32 from the wire would wrap to seconds (the kernel clamps
    // what is left to its own limit).
    if (change->kind != FlowChangeKind::Destroy && change->entry.timeout_s != 0) {
      const uint32_t slack = timeout_slack_s();
      const uint32_t t = change->entry.timeout_s;
      change->entry.timeout_s = t > UINT32_MAX - slack ? UINT32_MAX : t + slack;
    }
    if (change->kind == FlowChangeKind::New && !change->replaces_copy &&
        reconcile_.copy_binds_otherwise(change->entry)) {
      change->replaces_copy = true;
      ++counters_.copies_replaced;
    }
    changes.push_back(*change);
  }
  std::vector<std::error_code> errors;
  writer_.apply_batch(changes, errors);
  for (size_t i = 0; i < changes.size(); ++i) {
    reconcile_.note_applied(changes[i], !errors[i], batch.session(), batch.seq());
    if (options_.suppress_echoes && !errors[i]) echo_.note_written(changes[i], options_.now());
    if (errors[i]) {
      // Logged only now and then (log::should_log): the count says how many were not.
      if (log::should_log(++counters_.apply_errors)) {
        log::warning("sync", std::string("kernel refused ") + to_string(changes[i].kind) +
                                 " entry: " + errors[i].message() +
                                 (errors[i].value() == ENOMEM
                                      ? " (the conntrack table is full: nf_conntrack_max)"
                                      : "") +
                                 "; " + std::to_string(counters_.apply_errors) +
                                 " refused since start (fwhactl status: apply errors)");
      }
      continue;
    }
    ++counters_.entries_applied;
  }
}

// Acks are coalesced: at most one per ack_delay (20 ms) (the first after a quiet spell goes at once).
// They free the source's retained frames and pace its repairs, neither of which needs them
// sooner, while one ack per received frame cost the source a wake-up per frame.
void Replicator::after_input() {
  if (role_ != Role::Sink || applied_seq_ == acked_seq_ || !peer_hello_seen_) return;
  const Clock::time_point now = options_.now();
  const auto since = now - last_ack_at_;
  if (options_.ack_delay.count() > 0 && options_.wake_after && since < options_.ack_delay) {
    if (!ack_wakeup_armed_) {
      ack_wakeup_armed_ = true;
      options_.wake_after(
          std::chrono::duration_cast<std::chrono::microseconds>(options_.ack_delay - since));
    }
    return;
  }
  send_ack();
}

void Replicator::on_wakeup() {
  ack_wakeup_armed_ = false;
  send_ack();
}

void Replicator::send_ack() {
  if (role_ != Role::Sink || applied_seq_ == acked_seq_ || !peer_hello_seen_) return;
  wire::Frame f;
  f.mutable_ack()->set_seq(applied_seq_);
  f.mutable_ack()->set_session(applied_session_);
  if (transport_.send(f)) {
    acked_seq_ = applied_seq_;
    last_ack_at_ = options_.now();
    ++counters_.acks_sent;
  }
}

void Replicator::on_bad_frame(const std::string& error) {
  if (log::should_log(++counters_.frames_rejected)) {
    log::warning("sync", "rejected frame from peer: " + error);
  }
}

void Replicator::round_may_have_ended(uint64_t completed_before) {
  if (reconcile_.counters().rounds_completed == completed_before) return;
  if (reconcile_.holds_source_state() && options_.on_synced) options_.on_synced();
}

bool Replicator::request_barrier(std::function<void(bool)> done, bool take_over) {
  if (!transport_.connected() || !peer_hello_seen_) return false;
  flush();
  // The barrier vouches for everything: a running repair goes out in full before it.
  pump_repair(true);
  wire::Frame f;
  awaited_barrier_token_ = next_barrier_token_++;
  f.mutable_barrier()->set_token(awaited_barrier_token_);
  f.mutable_barrier()->set_take_over(take_over);
  if (!transport_.send(f)) return false;
  barrier_done_ = std::move(done);
  return true;
}

}  // namespace fwha::sync
