// Conntrack replication logic, without sockets, threads or kernel: the Master's side
// (Source) turns local conntrack changes into batched, sequence-numbered frames and keeps
// them until the peer acknowledges them; the Backup's side (Sink) validates frames, writes
// the entries straight into its kernel table (so a promotion needs no commit step) and
// acknowledges. The kernel sits behind ConntrackWriter/ConntrackReader and the connection
// behind FrameTransport: unit tests drive both with fakes and a manual clock.
//
// Nothing is lost for good:
// - a reconnect resumes from the sink's last applied seq when the source still holds the
//   frames after it; otherwise, and after an event overrun, a send-queue overflow or a gap,
//   a reconciliation round (reconciliation.h) repairs only the buckets that differ;
// - a periodic round heals drift from any cause within reconcile_interval, and refreshes the
//   entries about to expire on the sink while the source still has them.
//
// Role follows the VRRP group: Master -> Source, Backup/Initialize -> Sink.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fwha/flow.h"
#include "fwha_sync.pb.h"
#include "sync/conntrack_port.h"
#include "sync/echo_filter.h"
#include "sync/reconciliation.h"

namespace fwha::sync {

using Clock = std::chrono::steady_clock;

class FrameTransport {
 public:
  virtual ~FrameTransport() = default;
  virtual bool connected() const = 0;
  // Queues a frame. Returns false when it could not be queued (link down, or the bounded send
  // queue overflowed and the link is being reset: the next connect resyncs).
  virtual bool send(const wire::Frame& frame) = 0;
  // The same for a frame already encoded by append_frame() (kept for a resume, sent as is).
  virtual bool send_encoded(const std::string& bytes) = 0;
};

// Flows of the node itself (the sync link, management, VRRP) are not replicated.
struct LocalFilter {
  std::vector<IpAddress> addresses;  // the node's own addresses, VIPs excluded
  bool skip(const FlowEntry& e) const;
};

struct ReplicatorCounters {
  uint64_t entries_sent = 0;
  uint64_t entries_filtered = 0;
  uint64_t entries_received = 0;
  uint64_t entries_applied = 0;
  uint64_t apply_errors = 0;
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t frames_rejected = 0;   // unparseable, fatal framing, out of order, before hello,
                                  // a Hello of the wrong peer or version
  uint64_t changes_rejected = 0;  // parsed frame, invalid flow inside
  uint64_t unknown_frames = 0;    // valid Frame with a body type we do not know
  uint64_t sequence_gaps = 0;
  uint64_t duplicates = 0;        // FlowBatch with a seq already applied (after a resume)
  uint64_t resumes = 0;
  uint64_t frames_resent = 0;
  uint64_t overruns = 0;          // ENOBUFS on the event socket
  uint64_t send_failures = 0;
  uint64_t unacked_overflows = 0; // retransmit buffer over its bound: resume impossible
  uint64_t acks_sent = 0;
  uint64_t echoes_suppressed = 0;
  uint64_t flows_ignored_as_master = 0;  // FlowBatch from the peer while we were Master
  uint64_t changes_held_while_down = 0;  // kept in frames for the resume, not sent then
  uint64_t copies_replaced = 0;  // repair entries whose local copy had another NAT binding
};

class Replicator {
 public:
  enum class Role { Sink, Source };

  // The source runs one round at a time, from its summary until the round ends (the sink's
  // empty request, or the answer's RepairEnd). A summary left unanswered this long (a peer
  // stuck while its link stays up) no longer holds the next round back. A round of 1M
  // entries under load takes seconds here (bulk 1M: ~10 s), so this is far above any round.
  static constexpr std::chrono::seconds kRoundAnswerBound{60};

  struct Options {
    std::string node_name;
    std::string peer_name;
    uint32_t vrrp_priority = 0;  // ours, told to the peer in the Hello (0: not told)
    size_t max_changes_per_frame = 1000;
    bool replicate = true;  // false: the link still runs (peer visible), no entries flow
    // Encoded frames kept for a resume; beyond this the peer is resynced instead.
    size_t max_unacked_bytes = 64 * 1024 * 1024;
    // A repair answer is sent on only while less than this is unacknowledged, so it goes at
    // the pace the peer applies it, the queue stays small and events are not stuck behind it.
    // 4 MiB: ~70k entries, ~0.3-0.5 s of the sink's work, enough to keep it busy.
    size_t repair_window_bytes = 4 * 1024 * 1024;
    std::chrono::milliseconds reconcile_interval{30000};
    // A new Source's round waits this long (tick()): its digest dump holds the sync thread
    // for ~0.7 s per 250k entries, and the first moments after a takeover belong to the
    // handover's answer, the takeover settle and the new flows.
    std::chrono::milliseconds promotion_round_delay{1000};
    // Lag above this raises an alert; unacked data older than stall_after is a stall.
    std::chrono::milliseconds lag_alert{1000};
    std::chrono::milliseconds stall_after{3000};
    // The owner sends a frame at least this often while connected (0: no promise), told to
    // the peer in the Hello so it may take our silence for a stuck daemon (peer_silence.h).
    std::chrono::milliseconds speaks_every{0};
    std::function<Clock::time_point()> now = [] { return Clock::now(); };
    std::function<uint64_t()> new_session = nullptr;  // random by default
    // Called before the source dumps its table, to send the events already queued first.
    std::function<void()> before_dump = nullptr;
    // Called when table-sized work starts (a round's dump on either side, a repair answer,
    // a repair being applied), so the owner can drop the thread's real-time priority first.
    std::function<void()> on_bulk_work = nullptr;
    // Active/Active: this node listens to events while it applies the peer's entries, so
    // its own writes must not be sent back (echo_filter.h). Off in Active/Passive, where the
    // Backup does not listen and the filter would only cost memory.
    bool suppress_echoes = false;
    // Sink: acks go at most this often. Needs wake_after, which the owner implements with a
    // timer that calls on_wakeup(); without it every input is acknowledged at once.
    std::chrono::milliseconds ack_delay{20};
    std::function<void(std::chrono::microseconds)> wake_after = nullptr;
    // Sink: the peer asked us to take the group over (a Barrier with take_over); everything
    // it sent before is applied. The owner decides and calls `answer(took_over)` on this
    // replicator's thread. Unset: always refused.
    std::function<void(std::function<void(bool)> answer)> on_takeover_request = nullptr;
    // Sink: a reconciliation round has just ended complete, so the table holds the source's
    // state (a rejoining node may preempt from now on).
    std::function<void()> on_synced = nullptr;
    // Runs `step` later on this replicator's thread (the owner posts it to its loop), so a
    // reconciliation dump goes a part at a time with other work in between: at 250k entries
    // a whole dump held the thread ~0.7 s. Unset (the unit tests): dumps run whole, at once.
    std::function<void(std::function<void()>)> defer = nullptr;
    // A Heartbeat, or a FlowBatch, from the peer's source: its Master is alive
    // (sync_service.h).
    std::function<void()> on_heartbeat = nullptr;
    // The peer's Health frame: whether its tracked next-hops fail (sync_service.h).
    std::function<void(bool degraded, bool holds_state)> on_health = nullptr;
    // Source: the peer stepped down for our state (Hello.stepped_down); a round has started.
    std::function<void()> on_peer_stepped_down = nullptr;
    // Receives the peer's ExpectBatch frames (helper expectations, expect_sync.h).
    std::function<void(const wire::ExpectBatch&)> on_expect_batch = nullptr;
  };

  Replicator(Options options, ConntrackWriter& writer, ConntrackReader& reader,
             FrameTransport& transport);

  void set_role(Role role);
  Role role() const { return role_; }
  void set_filter(LocalFilter filter) { filter_ = std::move(filter); }

  // --- Source side ---
  void on_local_change(const FlowChange& change);  // buffered until flush()
  void flush();
  // Changes read but not yet sent (the event pump's hold counts them: sync/event_hold.h).
  size_t pending_count() const { return pending_.size(); }
  // Events were lost (`what`: how): reconcile now, or once the link is back.
  void on_overrun(const std::string& what = "ENOBUFS overrun");
  // Periodic work: reconciliation rounds, lag and stall alerts. Call about once a second.
  void tick();

  // --- link events ---
  void on_connected();
  void on_disconnected();
  // Sink, just demoted because two Masters met and only the peer holds the state: asks the
  // peer for a reconciliation round on this connection (Hello.stepped_down).
  void stepped_down();
  // Sink, just demoted otherwise (a better Master's advert, a stall): if we dropped the peer's
  // flows while both were Master, asks it now to resend them (a Hello, as a reconnect's),
  // instead of waiting for its next frame to show the gap: an idle pair would otherwise
  // wait for the periodic round.
  void ask_for_what_was_ignored();
  // Returns false when the peer must be disconnected (protocol violation).
  bool on_frame(const wire::Frame& frame);
  void on_bad_frame(const std::string& error);
  // After a burst of received frames has been handled: acknowledge what was applied (now,
  // or at the wake-up asked for through Options::wake_after).
  void after_input();
  void on_wakeup();

  // Graceful handover: sends a Barrier; `done(took_over)` runs when the peer acknowledged that
  // it applied every earlier frame (and, with `take_over`, whether it then took the group
  // over). Returns false (and does not call `done`) if the link is down.
  bool request_barrier(std::function<void(bool took_over)> done, bool take_over = false);

  bool peer_hello_seen() const { return peer_hello_seen_; }
  // Source: the peer's Hello said it takes a FlowBatch for a heartbeat (sync_service.h), and
  // when this node last sent one (nullopt: never).
  bool peer_takes_flows_as_heartbeats() const { return peer_flows_are_heartbeats_; }
  // The peer's Hello promised a frame at least every so often (0: no promise, or no Hello).
  std::chrono::milliseconds peer_speaks_every() const { return peer_speaks_every_; }
  std::optional<Clock::time_point> last_flows_sent() const { return last_flows_sent_; }
  // Connected, and the peer introduced itself: frames may go out.
  bool link_ready() const { return transport_.connected() && peer_hello_seen_; }
  // The peer's configured VRRP priority from its last Hello (0: never told).
  uint32_t peer_vrrp_priority() const { return peer_vrrp_priority_; }
  // Sink: see Reconciler::holds_source_state().
  bool holds_source_state() const {
    return role_ == Role::Sink && reconcile_.holds_source_state();
  }
  const ReplicatorCounters& counters() const { return counters_; }
  const ReconcileCounters& reconcile_counters() const { return reconcile_.counters(); }
  // Source: age of the oldest unacknowledged frame (0 when all acknowledged).
  std::chrono::milliseconds lag() const;
  size_t unacked_bytes() const { return inflight_bytes_; }
  size_t retained_bytes() const { return retained_bytes_; }  // kept for a resume
  bool repairing() const { return reconcile_.answering(); }
  // Table-sized work is running: a round's dump or comparison, a repair answer, a repair being
  // applied (what bulk_work_starts() announced; the scheduling governor waits for its end).
  bool table_work_running() const {
    return reconcile_.digesting() || reconcile_.answering() || reconcile_.comparing() ||
           reconcile_.in_repair();
  }
  uint64_t session() const { return session_; }

 private:
  // A FlowBatch sent and not yet acknowledged. `encoded` is kept while a resume is possible
  // (encoded, not as a message: a Frame object is several times its encoded size).
  struct Unacked {
    uint64_t seq;
    Clock::time_point sent_at;
    size_t bytes;
    std::string encoded;
  };

  void send_changes(const std::vector<FlowChange>& changes);
  bool send_batch_frame(const wire::Frame& frame);
  void pump_repair(bool ignore_window = false);
  bool on_hello(const wire::Hello& hello);
  void send_hello(bool stepped_down);
  void new_numbering(uint64_t session);
  void on_ack(const wire::Ack& ack);
  bool on_flows(const wire::FlowBatch& batch);
  void apply_changes(const wire::FlowBatch& batch);
  void start_round(const std::string& cause, bool all_differ = false);
  bool peer_nearly_empty(const wire::Hello& hello);
  void reset_source_state();
  void check_lag();
  void send_ack();
  void round_may_have_ended(uint64_t completed_before);
  void step_round();                   // options_.defer: the source's digest, a part at a time
  void send_summary(uint64_t round, const wire::Frame& summary);  // and the round runs
  void step_summary(uint64_t completed_before);  // the sink's comparison, likewise
  uint32_t timeout_slack_s() const;
  void bulk_work_starts();  // options_.on_bulk_work, if set

  Options options_;
  ConntrackWriter& writer_;
  ConntrackReader& reader_;
  FrameTransport& transport_;
  LocalFilter filter_;
  Reconciler reconcile_;
  EchoFilter echo_;
  Role role_ = Role::Sink;
  std::vector<FlowChange> pending_;
  std::vector<FlowChange> sending_;  // flush(): what is being sent
  wire::Frame batch_frame_;  // reused by send_changes()

  // Source state
  uint64_t session_ = 0;
  uint64_t next_seq_ = 1;
  std::deque<Unacked> unacked_;
  size_t inflight_bytes_ = 0;       // of every unacked frame
  size_t retained_bytes_ = 0;       // of the encoded frames kept
  bool resumable_ = true;           // false once encoded frames were dropped
  // The peer has seen this session (a round or a resume on a connection): a reconnect may
  // resume it, so changes made while the link is down are kept in frames for the resume.
  bool peer_knows_session_ = false;
  std::string deferred_round_;      // a round asked for while another was running
  // Source: the round whose summary is out and whose request has not come back (0: none),
  // and since when (kRoundAnswerBound).
  uint64_t summary_out_ = 0;
  Clock::time_point summary_out_at_{};
  // A repair answer's next step is posted to the loop (options_.defer): one at a time.
  bool answer_step_posted_ = false;
  bool round_running() const;        // digesting, awaiting the request, or answering
  void start_deferred_round();       // the round asked for meanwhile, once none runs
  // Source: the cause of a round not yet answered to its end (summary, request, RepairEnd),
  // or of an overrun while the link was not ready. A resume resends frames, not a round's
  // repair: after one, this round runs again (on_hello).
  std::string round_owed_;
  uint64_t owed_round_id_ = 0;  // its summary's round id once opened (0: deferred, not yet)
  void round_ended(uint64_t round);  // clears round_owed_ if `round` is the owed one or later
  // Source: why the peer can no longer resume our session, when it is our doing (it fell too
  // far behind): the cause of the reconnect's round, so status says more than "connect".
  std::string unresumable_cause_;
  std::optional<Clock::time_point> promotion_round_at_;  // set_role(Source): when tick() starts it
  Clock::time_point last_round_{};
  bool lag_alerted_ = false;
  bool stall_alerted_ = false;

  // Sink state
  uint64_t applied_session_ = 0;
  // The peer's session whose frames arrived while we were Master (two Masters, e.g. this node
  // was frozen and the peer took over) and were dropped, from which seq: if we step down,
  // that session's frames from there on are still to apply (on_flows).
  uint64_t ignored_session_ = 0;
  uint64_t ignored_from_seq_ = 0;
  // stepped_down(): the peer's session whose frames in flight are dropped, until another
  // session's first frame.
  uint64_t discard_session_ = 0;
  uint64_t applied_seq_ = 0;
  uint64_t acked_seq_ = 0;
  Clock::time_point last_ack_at_{};
  bool ack_wakeup_armed_ = false;

  bool peer_hello_seen_ = false;
  bool peer_flows_are_heartbeats_ = false;
  std::chrono::milliseconds peer_speaks_every_{0};
  bool peer_implies_reply_ = false;  // its Hello: a Flow without reply is the mirror
  // Some frame of this session was encoded with implied replies (a resume to a peer that
  // no longer reads them is refused).
  bool kept_frames_imply_reply_ = false;
  std::optional<Clock::time_point> last_flows_sent_;
  uint32_t peer_vrrp_priority_ = 0;
  uint64_t next_barrier_token_ = 1;
  uint64_t awaited_barrier_token_ = 0;
  std::function<void(bool)> barrier_done_;
  ReplicatorCounters counters_;
};

const char* to_string(Replicator::Role role);

}  // namespace fwha::sync
