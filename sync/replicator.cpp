#include "sync/replicator.h"

#include <algorithm>

#include "sync/flow_wire.h"
#include "sync/frame_codec.h"
#include "util/log.h"

namespace fwha::sync {
namespace {

constexpr uint8_t kIpProtoVrrp = 112;


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
    : options_(std::move(options)), writer_(writer), reader_(reader), transport_(transport) {}

void Replicator::set_role(Role role) {
  if (role == role_) return;
  log::info("sync", std::string("replication role ") + to_string(role_) + " -> " +
                        to_string(role));
  role_ = role;
  pending_.clear();
  // A new Master owns the truth: if the peer is there, it gets the whole table now.
  if (role_ == Role::Source && transport_.connected() && peer_hello_seen_) bulk_sync();
}

void Replicator::on_local_change(const FlowChange& change) {
  if (role_ != Role::Source || !options_.replicate) return;
  if (filter_.skip(change.entry)) {
    ++counters_.entries_filtered;
    return;
  }
  if (!transport_.connected()) return;  // the bulk sync on connect covers it
  pending_.push_back(change);
  if (pending_.size() >= options_.max_changes_per_frame) flush();
}

void Replicator::flush() {
  if (pending_.empty()) return;
  send_batch(pending_);
  pending_.clear();
}

void Replicator::send_batch(std::vector<FlowChange>& changes) {
  wire::Frame frame;
  auto* batch = frame.mutable_flows();
  batch->set_seq(next_seq_++);
  for (const auto& c : changes) to_wire(c, batch->add_changes());
  if (transport_.send(frame)) {
    ++counters_.frames_sent;
    counters_.entries_sent += changes.size();
  } else {
    ++counters_.send_failures;
  }
}

void Replicator::on_overrun() {
  ++counters_.overruns;
  log::warning("sync", "conntrack events lost (ENOBUFS overrun): resending the whole table");
  if (transport_.connected() && peer_hello_seen_) bulk_sync();
}

void Replicator::bulk_sync() {
  pending_.clear();
  if (!options_.replicate) return;
  wire::Frame begin;
  begin.mutable_bulk_begin()->set_seq(next_seq_);
  if (!transport_.send(begin)) return;
  uint64_t total = 0;
  std::vector<FlowChange> batch;
  batch.reserve(options_.max_changes_per_frame);
  auto ec = reader_.dump([&](const FlowEntry& e) {
    if (filter_.skip(e)) return;
    batch.push_back(FlowChange{FlowChangeKind::New, e});
    ++total;
    if (batch.size() >= options_.max_changes_per_frame) {
      send_batch(batch);
      batch.clear();
    }
  });
  if (!batch.empty()) send_batch(batch);
  if (ec) log::error("sync", "conntrack dump for bulk sync failed: " + ec.message());
  wire::Frame end;
  end.mutable_bulk_end()->set_seq(next_seq_);
  end.mutable_bulk_end()->set_entries(total);
  transport_.send(end);
  ++counters_.bulk_syncs_sent;
  log::notice("sync", "bulk sync sent entries=" + std::to_string(total));
}

void Replicator::on_connected() {
  peer_hello_seen_ = false;
  expected_seq_ = 0;
  wire::Frame hello;
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  hello.mutable_hello()->set_node(options_.node_name);
  transport_.send(hello);
}

void Replicator::on_disconnected() {
  peer_hello_seen_ = false;
  pending_.clear();
  barrier_done_ = nullptr;
  awaited_barrier_token_ = 0;
}

bool Replicator::on_hello(const wire::Hello& hello) {
  if (hello.protocol_version() != kProtocolVersion) {
    log::error("sync", "peer speaks protocol version " + std::to_string(hello.protocol_version()) +
                           ", we speak " + std::to_string(kProtocolVersion) + ": disconnecting");
    return false;
  }
  if (hello.node() != options_.peer_name) {
    log::error("sync", "peer introduced itself as '" + hello.node() + "', expected '" +
                           options_.peer_name + "': disconnecting");
    return false;
  }
  peer_hello_seen_ = true;
  log::notice("sync", "peer " + hello.node() + " connected");
  if (role_ == Role::Source) bulk_sync();
  return true;
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
    case wire::Frame::kFlows: apply_batch(frame.flows()); return true;
    case wire::Frame::kBulkBegin:
      log::info("sync", "bulk sync from peer begins");
      return true;
    case wire::Frame::kBulkEnd:
      ++counters_.bulk_syncs_received;
      log::notice("sync", "bulk sync from peer done entries=" +
                              std::to_string(frame.bulk_end().entries()));
      return true;
    case wire::Frame::kBarrier: {
      // Frames are applied as they arrive, so everything before the barrier is in the kernel.
      wire::Frame ack;
      ack.mutable_barrier_ack()->set_token(frame.barrier().token());
      transport_.send(ack);
      return true;
    }
    case wire::Frame::kBarrierAck:
      if (frame.barrier_ack().token() == awaited_barrier_token_ && barrier_done_) {
        awaited_barrier_token_ = 0;
        auto done = std::move(barrier_done_);
        barrier_done_ = nullptr;
        done();
      }
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

void Replicator::apply_batch(const wire::FlowBatch& batch) {
  if (expected_seq_ != 0 && batch.seq() != expected_seq_) {
    ++counters_.sequence_gaps;
    log::warning("sync", "flow batch seq=" + std::to_string(batch.seq()) + " expected=" +
                             std::to_string(expected_seq_));
  }
  expected_seq_ = batch.seq() + 1;
  if (role_ == Role::Source) {
    // Both sides believe they are Master; the election settles it. Writing the peer's view
    // over ours now could undo live state.
    log::warning("sync", "peer sent flows while we are Master: ignored");
    return;
  }
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
    auto ec = writer_.apply(*change);
    if (ec) {
      if (log::should_log(++counters_.apply_errors)) {
        log::warning("sync", std::string("kernel refused ") + to_string(change->kind) +
                                 " entry: " + ec.message());
      }
      continue;
    }
    ++counters_.entries_applied;
  }
}

void Replicator::on_bad_frame(const std::string& error) {
  if (log::should_log(++counters_.frames_rejected)) {
    log::warning("sync", "rejected frame from peer: " + error);
  }
}

bool Replicator::request_barrier(std::function<void()> done) {
  if (!transport_.connected() || !peer_hello_seen_) return false;
  flush();
  wire::Frame f;
  awaited_barrier_token_ = next_barrier_token_++;
  f.mutable_barrier()->set_token(awaited_barrier_token_);
  if (!transport_.send(f)) return false;
  barrier_done_ = std::move(done);
  return true;
}

}  // namespace fwha::sync
