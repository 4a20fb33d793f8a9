// Reconciliation rounds: repair only what differs between the source's table and the sink's.
//
//   source                                   sink
//   DigestSummary{round, digests[kBuckets]}  ->  dumps its table, compares bucket digests
//                                       <-   RepairRequest{round, differing buckets,
//                                                          entries close to expiry}
//   RepairBegin{round, buckets}          ->
//   FlowBatch... (entries of those buckets, current state of the expiring ones,
//                 Destroy for expiring ones the source no longer has)
//   RepairEnd{round}                     ->  deletes, in the repaired buckets, entries that
//                                            were there at the summary and that neither the
//                                            repair nor a later incremental change touched
//
// The same round serves a first sync (the sink is empty: every bucket differs), a resync
// after an event overrun or a lost connection, and the periodic check that heals drift. A
// change that races with the round is safe: the sink never deletes an entry touched by an
// incremental change after the summary, and an upsert of a stale copy is overwritten by the
// change's own frame, which follows it on the ordered stream.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fwha_sync.pb.h"
#include "sync/conntrack_port.h"
#include "sync/flow_digest.h"

namespace fwha::sync {

struct LocalFilter;

struct ReconcileCounters {
  uint64_t rounds_started = 0;      // source: summaries sent
  uint64_t answers_completed = 0;   // source: repair answers that reached RepairEnd
  uint64_t rounds_completed = 0;    // sink: RepairEnd handled (or nothing to repair)
  uint64_t rounds_incomplete = 0;   // sink: of those, ended by a source whose dump failed
  uint64_t buckets_repaired = 0;
  uint64_t entries_repaired = 0;    // source: sent in repairs; sink: received in repairs
  uint64_t entries_removed = 0;     // sink: stale entries deleted
  uint64_t expiring_refreshed = 0;  // source: expiring entries answered
  uint64_t dump_uncarried = 0;      // entries of the table's dumps that could not be carried
  uint64_t buckets_left_in_flux = 0;  // sink: differing, but changed meanwhile (next round)
  std::map<std::string, uint64_t> causes;  // rounds by cause
  std::string last_cause;
};

// The cause of the round that comes every reconcile interval whatever happens (logged at
// debug level; the others, such as "connect" and "overrun", at info).
inline constexpr const char* kPeriodicRound = "periodic";

// A periodic round's summary also says from which frame of the source's session on changes
// may cross the two dumps (DigestSummary.changes_from_seq; 0: none said, as in every other
// round).
struct ChangesInFlight {
  uint64_t session = 0;
  uint64_t from_seq = 0;
};

class Reconciler {
 public:
  using SendChanges = std::function<void(std::vector<FlowChange>&)>;
  using SendControl = std::function<void(const wire::Frame&)>;

  Reconciler(ConntrackWriter& writer, ConntrackReader& reader, const LocalFilter& filter);

  // --- source ---
  // Dumps the table and returns the DigestSummary to send. `all_differ`: no dump, the sink
  // is told to request every bucket (it is nearly empty, comparing would only cost a dump).
  wire::Frame begin_round(const std::string& cause, bool all_differ = false,
                          ChangesInFlight in_flight = {});
  // The same, a part at a time, so the thread can do other work in between (a dump of 250k
  // entries takes ~0.7 s here: heartbeats, handover answers and the takeover settle must
  // not wait for it). open_round() starts; step_round() reads up to `max_entries` and
  // returns the summary once the dump has ended. Changes meanwhile are safe: they reach the
  // sink as incremental frames, and a bucket they make differ is repaired (this round or the
  // next).
  void open_round(const std::string& cause, bool all_differ = false,
                  ChangesInFlight in_flight = {});
  std::optional<wire::Frame> step_round(size_t max_entries);
  bool digesting() const { return digest_job_ != nullptr; }
  // Starts answering a RepairRequest: sends RepairBegin and opens a dump that pump_answer()
  // sends on a part at a time. Paced by the caller (by the peer's acks), the answer is never
  // queued whole: 1M entries are ~60 MB of frames, and several times that as objects.
  void start_answer(const wire::RepairRequest& request, const SendControl& send_control);
  // Sends the next frame of the answer in progress (of up to `max_per_frame` changes), and
  // RepairEnd after the last one. Reads entries of the dump while `read_budget` lasts, and
  // takes what it read off it: an answer for a few buckets (or a few expiring copies)
  // matches few of the entries it reads, and one frame's worth could otherwise mean reading
  // the whole table (~0.7 s per 250k entries here) while the event socket waits. What
  // matched before the budget ran out is sent.
  enum class Pumped {
    kDone,    // no answer in progress any more (RepairEnd sent, or none was running)
    kFrame,   // a full frame went out; more to come
    kBudget,  // the budget is spent (what matched is sent); more to come
  };
  Pumped pump_answer(size_t max_per_frame, size_t& read_budget, const SendChanges& send_changes,
                     const SendControl& send_control);
  bool answering() const { return answer_ != nullptr; }
  // The id of the round opened last (0: none yet), and of the last answer that reached its
  // RepairEnd: the replicator knows from them whether the round it owes has ended.
  uint64_t last_round_opened() const { return next_round_ - 1; }
  uint64_t last_round_answered() const { return last_round_answered_; }

  // --- sink ---
  // Dumps the sink's table, compares, and returns the RepairRequest to send. Entries with
  // less than `expiry_threshold_s` left are listed, nearest expiry first, in at most
  // `max_expiring_bytes` of encoded entries (the rest wait for the next round; the threshold
  // leaves them one). They are listed by key only (the original tuple and the zone: all the
  // source reads), with the mirrored reply unless `peer_implies_reply`.
  wire::Frame on_summary(const wire::DigestSummary& summary, uint32_t expiry_threshold_s,
                         size_t max_expiring_bytes, bool peer_implies_reply = false);
  // The same in parts, as on the source side. Changes applied while the dump runs are noted
  // (note_applied), and the round never deletes them as stale.
  void open_summary(const wire::DigestSummary& summary, uint32_t expiry_threshold_s,
                    size_t max_expiring_bytes, bool peer_implies_reply = false);
  std::optional<wire::Frame> step_summary(size_t max_entries);
  bool comparing() const { return summary_job_ != nullptr; }
  void on_repair_begin(const wire::RepairBegin& begin);
  // Every change the sink applies goes through here, so the round knows what it touched.
  // `written`: the kernel took it, from frame `seq` of the source's `session`; its bucket is
  // then in flux for a summary whose changes_from_seq is at or below `seq`. (A refused one
  // is not: its bucket differs for good, and the next round repairs it.)
  void note_applied(const FlowChange& change, bool written, uint64_t session, uint64_t seq);
  // Before the sink applies `e` (a repair's New): does the copy it holds under e's original
  // tuple, untouched this round, have another reply tuple? An update cannot change a NAT
  // binding, so that copy must be replaced (FlowChange::replaces_copy), or the bucket would
  // differ again every round.
  bool copy_binds_otherwise(const FlowEntry& e) const;
  void on_repair_end(const wire::RepairEnd& end);
  bool in_repair() const { return in_repair_; }
  // Sink: a round ran to a complete end at least once, and none is being repaired now: the
  // table holds the source's state (up to the changes still in flight).
  bool holds_source_state() const {
    return counters_.rounds_completed > counters_.rounds_incomplete && !in_repair_;
  }

  void reset();  // the connection was lost: an unfinished round or answer is abandoned
  const ReconcileCounters& counters() const { return counters_; }

 private:
  // A dump has ended: counts what it could not carry, and lets it go.
  void end_dump(std::unique_ptr<ConntrackDump>& dump);

  ConntrackWriter& writer_;
  ConntrackReader& reader_;
  const LocalFilter& filter_;
  uint64_t next_round_ = 1;
  uint64_t last_round_answered_ = 0;
  ReconcileCounters counters_;

  // source: the answer in progress
  struct Answer {
    uint64_t round = 0;
    uint64_t buckets = 0;
    uint32_t bucket_count = kBuckets;                   // the sink's partition
    std::vector<bool> wanted;                           // by bucket of that partition
    std::unordered_set<FlowKey, FlowKeyHash> expiring;  // not yet answered
    std::unique_ptr<ConntrackDump> dump;
    std::vector<FlowEntry> part;   // read from the dump, not yet looked at
    size_t part_at = 0;
    uint64_t sent = 0;
    bool dump_failed = false;
  };
  void finish_answer(std::vector<FlowChange>& batch, const SendChanges& send_changes,
                     const SendControl& send_control);
  std::unique_ptr<Answer> answer_;

  // source: the digest of a round being computed
  struct DigestJob {
    wire::Frame frame;  // the summary, digests filled at the end
    std::string cause;
    std::unique_ptr<ConntrackDump> dump;
    TableDigest digest;
    std::vector<FlowEntry> part;
    bool failed = false;
  };
  std::unique_ptr<DigestJob> digest_job_;
  wire::Frame finish_round();

  // sink: the dump of a summary being compared. Which buckets differ is known only once the
  // whole table is read, so every entry is remembered until then, but only by what the
  // round needs of it: 64 bytes, not a 168-byte FlowEntry (a million entries are then
  // ~64 MB while a round compares, not ~170 MB or more).
  struct Seen {
    FlowKey key;
    uint32_t timeout_s = 0;
    uint64_t reply_hash = 0;  // the NAT binding: see untouched_
  };
  static_assert(sizeof(Seen) <= 64, "docs/design.md counts 64 bytes per entry in a round");
  struct SummaryJob {
    wire::DigestSummary summary;
    uint32_t expiry_threshold_s = 0;
    size_t max_expiring_bytes = 0;
    bool peer_implies_reply = false;
    std::unique_ptr<ConntrackDump> dump;
    TableDigest digest;
    std::vector<Seen> seen;
    std::unordered_set<FlowKey, FlowKeyHash> touched;  // changes applied meanwhile
  };
  std::unique_ptr<SummaryJob> summary_job_;
  wire::Frame finish_summary();

  // sink round state
  uint64_t round_ = 0;            // 0: none in progress
  bool in_repair_ = false;
  std::vector<bool> repairing_ = std::vector<bool>(kBuckets, false);
  // The sink's entries in the differing buckets at the summary that no change of this round
  // has touched yet, with the hash of their reply tuple (their NAT binding): what is left at
  // RepairEnd is stale. Empty for an empty sink, so a first sync tracks nothing per entry.
  std::unordered_map<FlowKey, uint64_t, FlowKeyHash> untouched_;
  // sink, across rounds: per bucket, the seq of the last frame of touched_session_ that
  // wrote to it (note_written), and the buckets the last comparison left in flux.
  std::vector<uint64_t> touched_seq_ = std::vector<uint64_t>(kBuckets, 0);
  uint64_t touched_session_ = 0;
  std::vector<bool> left_in_flux_ = std::vector<bool>(kBuckets, false);
};

}  // namespace fwha::sync
