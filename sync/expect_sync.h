// Replication of helper expectations (issue 3: an FTP data connection announced before a
// failover must be let in after it). Without sockets or threads, like Replicator: the kernel
// sits behind ExpectWriter/ExpectReader, the link behind FrameTransport.
//
// - Source (Master): expectation events are batched into ExpectBatch frames; a connecting
//   peer, or an overrun of the event socket, gets a snapshot (dump) of every current one.
// - Sink (Backup): each expectation is validated and created in the kernel. Its master
//   connection may not be there yet (the snapshot goes out right after the Hello, before the
//   reconciliation round has repaired the table): such expectations wait, bounded in number,
//   and are retried every tick until they land or their timeout passes.
// - Not sequenced, acknowledged or reconciled: an expectation lives for minutes at most and is
//   used once; one lost with a frame is missing until the link reconnects (the snapshot), and
//   the periodic reconciliation does not look at expectations (docs/design.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "fwha_sync.pb.h"
#include "sync/expect_port.h"
#include "sync/replicator.h"

namespace fwha::sync {

struct ExpectCounters {
  uint64_t sent = 0;
  uint64_t filtered = 0;        // master is a flow of the node itself
  uint64_t received = 0;
  uint64_t applied = 0;
  uint64_t rejected = 0;        // invalid on the wire
  uint64_t apply_errors = 0;    // the kernel refused it (other than a missing master)
  uint64_t waiting = 0;         // now waiting for their master connection
  uint64_t expired_waiting = 0; // timed out before their master connection arrived
  uint64_t snapshots = 0;
  uint64_t overruns = 0;
};

class ExpectSync {
 public:
  static constexpr size_t kMaxWaiting = 4096;
  static constexpr size_t kMaxChangesPerFrame = 500;

  ExpectSync(ExpectWriter& writer, ExpectReader& reader, FrameTransport& transport,
             std::function<Clock::time_point()> now = [] { return Clock::now(); });

  // Source: called for the master connection of each new expectation a moment later. A helper
  // that rewrote the announcing packet (FTP PORT to the WAN VIP, another length) changed the
  // master's NAT sequence adjustment without any conntrack event: the caller re-reads the
  // entry and replicates it, so the new Master adjusts the control connection's sequence
  // numbers the same way.
  void set_refresh_master(std::function<void(const FlowTuple&, uint16_t zone)> refresh) {
    refresh_master_ = std::move(refresh);
  }

  void set_source(bool source);
  void set_filter(LocalFilter filter) { filter_ = std::move(filter); }

  // --- Source ---
  void on_local_change(const ExpectChange& change);
  void flush();
  void on_overrun();     // events were lost: send a snapshot
  void on_connected();   // after the Hello: send a snapshot

  // --- Sink ---
  void on_batch(const wire::ExpectBatch& batch);
  // Sink: retries what waits for its master. Source: refreshes masters (set_refresh_master).
  void tick();

  const ExpectCounters& counters() const { return counters_; }

 private:
  struct Waiting {
    ExpectEntry entry;
    Clock::time_point until;
  };

  void send_snapshot(const char* why);
  void send(std::vector<ExpectChange>& changes);
  void apply(const ExpectChange& change);
  void wait_for_master(const ExpectEntry& e);
  void forget_waiting(const ExpectEntry& e);

  ExpectWriter& writer_;
  ExpectReader& reader_;
  FrameTransport& transport_;
  std::function<Clock::time_point()> now_;
  LocalFilter filter_;
  bool source_ = false;
  std::vector<ExpectChange> pending_;
  std::vector<Waiting> waiting_;
  struct Refresh {
    FlowTuple master;
    uint16_t zone;
    Clock::time_point after;
  };
  std::vector<Refresh> refresh_;
  std::function<void(const FlowTuple&, uint16_t)> refresh_master_;
  ExpectCounters counters_;
};

}  // namespace fwha::sync
