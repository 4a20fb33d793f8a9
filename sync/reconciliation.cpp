#include "sync/reconciliation.h"

#include <algorithm>
#include <cstdint>

#include "sync/flow_wire.h"
#include "sync/replicator.h"
#include "util/log.h"

namespace fwha::sync {

namespace {
// Tag and length prefix of one element of a repeated message field (a Flow is < 2^14 bytes).
constexpr size_t kRepeatedFieldOverhead = 3;
}  // namespace

Reconciler::Reconciler(ConntrackWriter& writer, ConntrackReader& reader,
                       const LocalFilter& filter)
    : writer_(writer), reader_(reader), filter_(filter) {}

wire::Frame Reconciler::begin_round(const std::string& cause, bool all_differ,
                                    ChangesInFlight in_flight) {
  open_round(cause, all_differ, in_flight);
  for (;;) {
    if (auto f = step_round(SIZE_MAX)) return std::move(*f);
  }
}

void Reconciler::open_round(const std::string& cause, bool all_differ,
                            ChangesInFlight in_flight) {
  digest_job_ = std::make_unique<DigestJob>();
  DigestJob& j = *digest_job_;
  j.cause = cause;
  ++counters_.rounds_started;  // counted now: status shows the round while its dump runs
  ++counters_.causes[cause];
  counters_.last_cause = cause;
  auto* s = j.frame.mutable_digest_summary();
  s->set_round(next_round_++);
  s->set_bucket_count(kBuckets);
  s->set_cause(cause);
  if (in_flight.from_seq != 0 && !all_differ) {
    s->set_session(in_flight.session);
    s->set_changes_from_seq(in_flight.from_seq);
  }
  if (all_differ) {
    s->set_all_differ(true);
    return;
  }
  std::error_code ec;
  j.dump = reader_.open_dump(ec);
  if (!j.dump) {
    log::error("sync", "conntrack dump for reconciliation failed: " + ec.message());
    j.failed = true;
  }
}

void Reconciler::end_dump(std::unique_ptr<ConntrackDump>& dump) {
  if (const uint64_t n = dump->uncarried()) {
    counters_.dump_uncarried += n;
    log::warning("sync", "conntrack dump: " + std::to_string(n) +
                             " entries could not be carried (unparseable, or not IPv4/IPv6) "
                             "total=" + std::to_string(counters_.dump_uncarried));
  }
  dump.reset();
}

std::optional<wire::Frame> Reconciler::step_round(size_t max_entries) {
  if (!digest_job_) return std::nullopt;
  DigestJob& j = *digest_job_;
  for (size_t read = 0; j.dump && read < max_entries;) {
    j.part.clear();
    std::error_code ec;
    const bool more = j.dump->next(j.part, ec);
    for (const FlowEntry& e : j.part) {
      if (!filter_.skip(e)) j.digest.add(e);
    }
    read += std::max<size_t>(1, j.part.size());
    if (ec) {
      log::error("sync", "conntrack dump for reconciliation failed: " + ec.message());
      j.failed = true;
    }
    if (!more) end_dump(j.dump);
  }
  if (j.dump) return std::nullopt;
  return finish_round();
}

wire::Frame Reconciler::finish_round() {
  std::unique_ptr<DigestJob> j = std::move(digest_job_);
  auto* s = j->frame.mutable_digest_summary();
  std::string entries = "not counted: the peer is nearly empty, every bucket is sent";
  if (!s->all_differ()) {
    s->mutable_digests()->Reserve(kBuckets);
    for (uint64_t d : j->digest.digest) s->add_digests(d);
    entries = std::to_string(j->digest.entries);
  }
  // The periodic round comes every 30 s whatever happens: a line each time would be most of
  // a quiet pair's log. What it finds (buckets that differ, entries removed) is logged.
  log::write(j->cause == kPeriodicRound ? log::Level::Debug : log::Level::Info, "sync",
             "reconciliation round " + std::to_string(s->round()) + " cause=" + j->cause +
                 " entries=" + entries);
  return std::move(j->frame);
}

void Reconciler::start_answer(const wire::RepairRequest& request,
                              const SendControl& send_control) {
  answer_ = std::make_unique<Answer>();
  Answer& a = *answer_;
  a.round = request.round();
  // The sink's partition (an older sink's has 4096 buckets): answered in ours, the sink would
  // delete the entries of its buckets that ours left out.
  a.bucket_count = request.bucket_count() == 0 ? kBucketsBefore65536 : request.bucket_count();
  if (a.bucket_count > kBuckets) {
    log::warning("sync", "repair request in " + std::to_string(a.bucket_count) +
                             " buckets, at most " + std::to_string(kBuckets) +
                             " are known: answering every entry");
    a.bucket_count = 1;
    a.wanted.assign(1, true);
    a.buckets = 1;
  } else {
    a.wanted.assign(a.bucket_count, false);
    for (uint32_t b : request.buckets()) {
      if (b < a.bucket_count && !a.wanted[b]) {
        a.wanted[b] = true;
        ++a.buckets;
      }
    }
  }
  for (const auto& f : request.expiring()) {
    std::string error;
    if (auto e = from_wire(f, error)) a.expiring.insert(key_of(*e));
  }
  wire::Frame begin;
  begin.mutable_repair_begin()->set_round(request.round());
  *begin.mutable_repair_begin()->mutable_buckets() = request.buckets();
  send_control(begin);
  std::error_code ec;
  a.dump = reader_.open_dump(ec);
  if (!a.dump) {
    log::error("sync", "conntrack dump for repair failed: " + ec.message());
    a.dump_failed = true;
  }
}

Reconciler::Pumped Reconciler::pump_answer(size_t max_per_frame, size_t& read_budget,
                                           const SendChanges& send_changes,
                                           const SendControl& send_control) {
  if (!answer_) return Pumped::kDone;
  Answer& a = *answer_;
  std::vector<FlowChange> batch;
  batch.reserve(max_per_frame);
  bool budget_spent = false;
  while (batch.size() < max_per_frame) {
    if (a.part_at == a.part.size()) {
      a.part.clear();
      a.part_at = 0;
      if (!a.dump) break;
      // Checked between parts only: a part is one datagram, read whole.
      if (read_budget == 0) {
        budget_spent = true;
        break;
      }
      std::error_code ec;
      const bool more = a.dump->next(a.part, ec);
      if (ec) {
        log::error("sync", "conntrack dump for repair failed: " + ec.message());
        a.dump_failed = true;
      }
      if (!more) end_dump(a.dump);
      read_budget -= std::min(read_budget, a.part.size());
      continue;
    }
    const FlowEntry& e = a.part[a.part_at++];
    if (filter_.skip(e)) continue;
    const FlowKey k = key_of(e);
    if (a.wanted[bucket_of(k, a.bucket_count)]) {
      batch.push_back({FlowChangeKind::New, e});
      a.expiring.erase(k);
    } else if (a.expiring.erase(k)) {
      ++counters_.expiring_refreshed;
      batch.push_back({FlowChangeKind::Update, e});
    }
  }
  a.sent += batch.size();
  const bool dump_over = !a.dump && a.part_at == a.part.size();
  if (dump_over) {
    finish_answer(batch, send_changes, send_control);
    return Pumped::kDone;
  }
  // Sent now, not kept for the next call: the loop's events go out meanwhile, and a copy
  // read before a flow's destroy must not reach the peer after that destroy.
  if (!batch.empty()) send_changes(batch);
  return budget_spent ? Pumped::kBudget : Pumped::kFrame;
}

// What the sink holds close to expiry and we no longer have ends on the sink too; then
// RepairEnd.
void Reconciler::finish_answer(std::vector<FlowChange>& batch, const SendChanges& send_changes,
                               const SendControl& send_control) {
  // Taken out first: the sends below may end in the link's close handler, whose reset()
  // would otherwise free the answer while it is read here.
  const std::unique_ptr<Answer> owned = std::move(answer_);
  Answer& a = *owned;
  if (!a.dump_failed) {
    for (const FlowKey& k : a.expiring) {
      FlowEntry gone;
      gone.original = k.original;
      gone.reply = k.original;
      gone.reply.src = k.original.dst;
      gone.reply.dst = k.original.src;
      gone.zone = k.zone;
      batch.push_back({FlowChangeKind::Destroy, gone});
      ++a.sent;
    }
  }
  if (!batch.empty()) send_changes(batch);
  wire::Frame end;
  end.mutable_repair_end()->set_round(a.round);
  end.mutable_repair_end()->set_entries(a.sent);
  end.mutable_repair_end()->set_incomplete(a.dump_failed);
  send_control(end);
  counters_.buckets_repaired += a.buckets;
  counters_.entries_repaired += a.sent;
  ++counters_.answers_completed;
  last_round_answered_ = std::max(last_round_answered_, a.round);
}

wire::Frame Reconciler::on_summary(const wire::DigestSummary& summary,
                                   uint32_t expiry_threshold_s, size_t max_expiring_bytes,
                                   bool peer_implies_reply) {
  open_summary(summary, expiry_threshold_s, max_expiring_bytes, peer_implies_reply);
  for (;;) {
    if (auto f = step_summary(SIZE_MAX)) return std::move(*f);
  }
}

void Reconciler::open_summary(const wire::DigestSummary& summary, uint32_t expiry_threshold_s,
                              size_t max_expiring_bytes, bool peer_implies_reply) {
  reset();
  round_ = summary.round();
  summary_job_ = std::make_unique<SummaryJob>();
  SummaryJob& j = *summary_job_;
  j.summary = summary;
  j.expiry_threshold_s = expiry_threshold_s;
  j.max_expiring_bytes = max_expiring_bytes;
  j.peer_implies_reply = peer_implies_reply;
  // Sized once from the kernel's count: doubling a vector of a million would hold 1.5-2x.
  const auto n = reader_.count();
  if (n) j.seen.reserve(*n + *n / 16);
  // An empty table (a standby whose table was flushed or that has just booted) has nothing
  // to compare: no dump. A dump walks the whole hash whatever it holds: ~95 ms at 2M buckets
  // in the benchmark's lab, whose namespaces share one hash with the Master's 250k entries.
  // (There the standby holds 2 entries of its own, so this does not apply: a round must
  // still remove the stale entries of a nearly empty table.) An entry made meanwhile is not
  // tracked, so this round does not remove it, as one the dump missed.
  if (n && *n == 0) return;
  std::error_code ec;
  j.dump = reader_.open_dump(ec);
  if (!j.dump) log::error("sync", "conntrack dump for reconciliation failed: " + ec.message());
}

std::optional<wire::Frame> Reconciler::step_summary(size_t max_entries) {
  if (!summary_job_) return std::nullopt;
  SummaryJob& j = *summary_job_;
  std::vector<FlowEntry> part;
  for (size_t read = 0; j.dump && read < max_entries;) {
    part.clear();
    std::error_code ec;
    const bool more = j.dump->next(part, ec);
    for (const FlowEntry& e : part) {
      if (filter_.skip(e)) continue;
      j.digest.add(e);
      j.seen.push_back(Seen{key_of(e), e.timeout_s, reply_hash(e)});
    }
    read += std::max<size_t>(1, part.size());
    if (ec) log::error("sync", "conntrack dump for reconciliation failed: " + ec.message());
    if (!more) end_dump(j.dump);
  }
  if (j.dump) return std::nullopt;
  return finish_summary();
}

// Compares the digests and builds the RepairRequest. An entry that a change touched while the
// dump ran is not tracked as untouched: the round must not delete it as stale.
wire::Frame Reconciler::finish_summary() {
  std::unique_ptr<SummaryJob> job = std::move(summary_job_);
  const wire::DigestSummary& summary = job->summary;
  const uint32_t expiry_threshold_s = job->expiry_threshold_s;
  const size_t max_expiring_bytes = job->max_expiring_bytes;
  TableDigest& digest = job->digest;
  wire::Frame f;
  auto* req = f.mutable_repair_request();
  req->set_round(round_);
  req->set_bucket_count(kBuckets);
  std::vector<uint64_t> theirs(summary.digests().begin(), summary.digests().end());
  if (summary.all_differ()) {
    theirs.assign(kBuckets, ~uint64_t{0});
  } else if (summary.bucket_count() != kBuckets || theirs.size() != kBuckets) {
    log::warning("sync", "digest summary with " + std::to_string(theirs.size()) +
                             " buckets, expected " + std::to_string(kBuckets) +
                             ": repairing everything");
    theirs.assign(kBuckets, ~uint64_t{0});
  }
  // A bucket a change crossed the dumps in (written on this side by a frame sent after the
  // source's dump began) is left to the next round, once: under churn most differing
  // buckets are such, and repairing one resends all of its entries. A drift in it waits a
  // round at most.
  const uint64_t race_from = summary.changes_from_seq();
  const bool may_leave = race_from != 0 && !summary.all_differ() &&
                         summary.session() == touched_session_;
  std::vector<bool> left(kBuckets, false);
  uint64_t n_left = 0;
  for (uint32_t b : digest.differing(theirs)) {
    if (may_leave && touched_seq_[b] >= race_from && !left_in_flux_[b]) {
      left[b] = true;
      ++n_left;
      continue;
    }
    req->add_buckets(b);
    repairing_[b] = true;
  }
  left_in_flux_ = std::move(left);
  counters_.buckets_left_in_flux += n_left;
  std::vector<const Seen*> expiring;
  for (const Seen& e : job->seen) {
    if (repairing_[bucket_of(e.key)]) {
      if (!job->touched.count(e.key)) untouched_.emplace(e.key, e.reply_hash);
    } else if (e.timeout_s < expiry_threshold_s) {
      expiring.push_back(&e);
    }
  }
  // Bounded in bytes, not entries: the request is one frame (IPv6 keys are twice the size).
  std::sort(expiring.begin(), expiring.end(),
            [](const Seen* a, const Seen* b) { return a->timeout_s < b->timeout_s; });
  // The bucket list goes first (every bucket: ~180 KiB, computed): the rest is the list's.
  size_t bytes = req->ByteSizeLong();
  for (const Seen* e : expiring) {
    wire::Flow* w = req->add_expiring();
    tuple_to_wire(e->key.original, w->mutable_original());
    if (!job->peer_implies_reply) tuple_to_wire(mirror(e->key.original), w->mutable_reply());
    if (e->key.zone != 0) w->set_zone(e->key.zone);
    bytes += w->ByteSizeLong() + kRepeatedFieldOverhead;
    if (bytes > max_expiring_bytes) {
      req->mutable_expiring()->RemoveLast();
      break;
    }
  }
  if (req->buckets_size() == 0 && req->expiring_size() == 0) {
    if (n_left) {
      log::info("sync", "reconciliation round " + std::to_string(round_) + ": 0 of " +
                            std::to_string(kBuckets) + " buckets differ (" +
                            std::to_string(n_left) + " more changed meanwhile: next round)");
    }
    // Nothing differs: the round is complete here (the source sends no RepairEnd for an
    // empty request).
    ++counters_.rounds_completed;
    reset();
    return f;
  }
  // Entries near expiry alone are routine (long-lived idle flows, refreshed every round).
  log::write(req->buckets_size() > 0 ? log::Level::Info : log::Level::Debug, "sync",
             "reconciliation round " + std::to_string(round_) + ": " +
                 std::to_string(req->buckets_size()) + " of " + std::to_string(kBuckets) +
                 " buckets differ" +
                 (n_left ? " (" + std::to_string(n_left) + " more changed meanwhile: next round)"
                         : std::string()) +
                 ", " + std::to_string(req->expiring_size()) + " entries near expiry");
  return f;
}

void Reconciler::on_repair_begin(const wire::RepairBegin& begin) {
  if (begin.round() != round_) return;
  in_repair_ = true;
}

void Reconciler::note_applied(const FlowChange& change, bool written, uint64_t session,
                              uint64_t seq) {
  const FlowKey k = key_of(change.entry);
  const uint32_t b = bucket_of(k);
  if (written) {
    if (session != touched_session_) {  // a new numbering: the old seqs mean nothing now
      touched_seq_.assign(kBuckets, 0);
      touched_session_ = session;
    }
    touched_seq_[b] = std::max(touched_seq_[b], seq);
  }
  if (round_ == 0) return;
  if (summary_job_) summary_job_->touched.insert(k);
  if (!repairing_[b]) return;
  if (in_repair_) ++counters_.entries_repaired;
  if (!untouched_.empty()) untouched_.erase(k);
}

bool Reconciler::copy_binds_otherwise(const FlowEntry& e) const {
  if (untouched_.empty()) return false;
  const auto it = untouched_.find(key_of(e));
  return it != untouched_.end() && it->second != reply_hash(e);
}

void Reconciler::on_repair_end(const wire::RepairEnd& end) {
  if (end.round() != round_ || !in_repair_) return;
  if (end.incomplete()) {
    log::warning("sync", "reconciliation round " + std::to_string(round_) +
                             ": the peer's dump failed part-way; nothing removed, the next "
                             "round repairs the rest");
    ++counters_.rounds_completed;
    ++counters_.rounds_incomplete;
    reset();
    return;
  }
  std::vector<FlowChange> stale;
  for (const auto& [k, reply] : untouched_) {
    FlowEntry e;
    e.original = k.original;
    e.zone = k.zone;
    stale.push_back({FlowChangeKind::Destroy, e});
  }
  std::vector<std::error_code> errors;
  writer_.apply_batch(stale, errors);
  uint64_t removed = 0;
  for (const auto& ec : errors) removed += ec ? 0 : 1;
  counters_.entries_removed += removed;
  ++counters_.rounds_completed;
  if (removed > 0) {
    log::notice("sync", "reconciliation round " + std::to_string(round_) + " removed " +
                            std::to_string(removed) + " stale entries");
  }
  reset();
}

void Reconciler::reset() {
  digest_job_.reset();
  summary_job_.reset();
  round_ = 0;
  in_repair_ = false;
  repairing_.assign(kBuckets, false);
  untouched_.clear();
  answer_.reset();
}

}  // namespace fwha::sync
