#include "sync/expect_sync.h"

#include <algorithm>

#include "sync/expect_wire.h"
#include "util/log.h"

namespace fwha::sync {
namespace {

// An expectation waits at least this long for its master, even one reported with a timeout
// of 0 (the dump rounds down).
constexpr auto kMinWait = std::chrono::seconds(5);
// The expectation event leaves the kernel before the helper has rewritten the packet that
// announced it (nf_nat_ftp: expect, then mangle): re-read the master only after this.
constexpr auto kRefreshDelay = std::chrono::milliseconds(20);
constexpr size_t kMaxRefresh = 4096;

bool skip(const LocalFilter& filter, const ExpectEntry& e) {
  FlowEntry master;
  master.original = e.master;
  return filter.skip(master);
}

}  // namespace

ExpectSync::ExpectSync(ExpectWriter& writer, ExpectReader& reader, FrameTransport& transport,
                       std::function<Clock::time_point()> now)
    : writer_(writer), reader_(reader), transport_(transport), now_(std::move(now)) {}

void ExpectSync::set_source(bool source) {
  source_ = source;
  pending_.clear();
  refresh_.clear();
  waiting_.clear();  // a new Master's kernel has its own; the old Master's are not ours to add
  counters_.waiting = 0;
}

// --- source ----------------------------------------------------------------------------------

void ExpectSync::on_local_change(const ExpectChange& change) {
  if (!source_) return;
  if (skip(filter_, change.entry)) {
    ++counters_.filtered;
    return;
  }
  pending_.push_back(change);
  if (change.kind == ExpectChangeKind::New && refresh_master_ && refresh_.size() < kMaxRefresh) {
    refresh_.push_back({change.entry.master, change.entry.zone, now_() + kRefreshDelay});
  }
}

void ExpectSync::flush() {
  if (pending_.empty()) return;
  if (transport_.connected()) send(pending_);  // else the snapshot on connect covers them
  pending_.clear();
}

void ExpectSync::on_overrun() {
  ++counters_.overruns;
  pending_.clear();  // the snapshot supersedes them
  send_snapshot("overrun");
}

void ExpectSync::on_connected() {
  if (source_) send_snapshot("connect");
}

void ExpectSync::send_snapshot(const char* why) {
  if (!source_ || !transport_.connected()) return;
  std::vector<ExpectChange> all;
  const std::error_code ec = reader_.dump([&](const ExpectEntry& e) {
    if (skip(filter_, e)) {
      ++counters_.filtered;
      return;
    }
    all.push_back({ExpectChangeKind::New, e});
  });
  if (ec) {
    log::error("sync", "expectation dump failed (" + std::string(why) + "): " + ec.message());
    return;
  }
  ++counters_.snapshots;
  if (!all.empty()) {
    log::info("sync", "sending " + std::to_string(all.size()) + " expectations cause=" + why);
  }
  send(all);
}

void ExpectSync::send(std::vector<ExpectChange>& changes) {
  for (size_t i = 0; i < changes.size(); i += kMaxChangesPerFrame) {
    wire::Frame frame;
    wire::ExpectBatch* batch = frame.mutable_expect_batch();
    const size_t end = std::min(changes.size(), i + kMaxChangesPerFrame);
    for (size_t k = i; k < end; ++k) to_wire(changes[k], batch->add_changes());
    if (!transport_.send(frame)) return;  // link reset: the next connect sends a snapshot
    counters_.sent += end - i;
  }
}

// --- sink ------------------------------------------------------------------------------------

void ExpectSync::on_batch(const wire::ExpectBatch& batch) {
  if (source_) {
    log::warning("sync", "peer sent expectations while we are Master: ignored");
    return;
  }
  for (const wire::ExpectChange& wc : batch.changes()) {
    ++counters_.received;
    std::string error;
    std::optional<ExpectChange> c = from_wire(wc, error);
    if (!c) {
      if (log::should_log(++counters_.rejected)) {
        log::warning("sync", "invalid expectation from peer rejected: " + error +
                                 " count=" + std::to_string(counters_.rejected));
      }
      continue;
    }
    apply(*c);
  }
}

void ExpectSync::apply(const ExpectChange& c) {
  if (c.kind == ExpectChangeKind::Destroy) forget_waiting(c.entry);
  const std::error_code ec = writer_.apply(c);
  if (!ec) {
    ++counters_.applied;
    return;
  }
  if (c.kind == ExpectChangeKind::New && ec == std::errc::no_such_file_or_directory) {
    wait_for_master(c.entry);
    return;
  }
  if (log::should_log(++counters_.apply_errors)) {
    log::warning("sync", "kernel refused a replicated expectation: " + ec.message() +
                             " count=" + std::to_string(counters_.apply_errors));
  }
}

void ExpectSync::wait_for_master(const ExpectEntry& e) {
  forget_waiting(e);
  if (waiting_.size() >= kMaxWaiting) {
    // Bounded: the oldest is the nearest to expiry and the least likely to be used.
    waiting_.erase(waiting_.begin());
    ++counters_.expired_waiting;
  }
  waiting_.push_back({e, now_() + std::max<Clock::duration>(std::chrono::seconds(e.timeout_s),
                                                            kMinWait)});
  counters_.waiting = waiting_.size();
}

void ExpectSync::forget_waiting(const ExpectEntry& e) {
  std::erase_if(waiting_, [&](const Waiting& w) {
    return w.entry.tuple == e.tuple && w.entry.zone == e.zone;
  });
  counters_.waiting = waiting_.size();
}

void ExpectSync::tick() {
  if (source_) {
    const Clock::time_point now = now_();
    std::vector<Refresh> later;
    for (const Refresh& r : refresh_) {
      if (now < r.after) {
        later.push_back(r);
      } else {
        refresh_master_(r.master, r.zone);
      }
    }
    refresh_.swap(later);
    return;
  }
  if (waiting_.empty()) return;
  const Clock::time_point now = now_();
  std::vector<Waiting> still;
  for (Waiting& w : waiting_) {
    const std::error_code ec = writer_.apply({ExpectChangeKind::New, w.entry});
    if (!ec) {
      ++counters_.applied;
    } else if (ec == std::errc::no_such_file_or_directory && now < w.until) {
      still.push_back(std::move(w));
    } else if (ec == std::errc::no_such_file_or_directory) {
      ++counters_.expired_waiting;
    } else if (log::should_log(++counters_.apply_errors)) {
      log::warning("sync", "kernel refused a replicated expectation: " + ec.message() +
                               " count=" + std::to_string(counters_.apply_errors));
    }
  }
  waiting_.swap(still);
  counters_.waiting = waiting_.size();
}

}  // namespace fwha::sync
