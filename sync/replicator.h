// Conntrack replication logic, without sockets or kernel: the Master's side (Source) turns
// local conntrack changes into batched, sequence-numbered frames; the Backup's side (Sink)
// validates received frames and writes the entries straight into its kernel table, so a
// promotion needs no commit step. The kernel sits behind ConntrackWriter/ConntrackReader and
// the connection behind FrameTransport: unit tests drive both with fakes.
//
// Role follows the VRRP group: Master -> Source, Backup/Initialize -> Sink. A node becoming
// Source while the link is up sends its whole table (bulk), as it does when a peer connects;
// the sink's create-or-update makes duplicates harmless.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fwha/flow.h"
#include "fwha_sync.pb.h"
#include "sync/conntrack_port.h"

namespace fwha::sync {

class FrameTransport {
 public:
  virtual ~FrameTransport() = default;
  virtual bool connected() const = 0;
  // Queues a frame. Returns false when it could not be queued (link down, or the bounded send
  // queue overflowed and the link is being reset: the next connect resyncs).
  virtual bool send(const wire::Frame& frame) = 0;
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
  uint64_t frames_rejected = 0;   // unparseable or fatal framing
  uint64_t changes_rejected = 0;  // parsed frame, invalid flow inside
  uint64_t unknown_frames = 0;    // valid Frame with a body type we do not know
  uint64_t sequence_gaps = 0;
  uint64_t bulk_syncs_sent = 0;
  uint64_t bulk_syncs_received = 0;
  uint64_t overruns = 0;          // ENOBUFS on the event socket
  uint64_t send_failures = 0;
};

class Replicator {
 public:
  enum class Role { Sink, Source };

  struct Options {
    std::string node_name;
    std::string peer_name;
    size_t max_changes_per_frame = 1000;
    bool replicate = true;  // false: the link still runs (peer visible), no entries flow
  };

  Replicator(Options options, ConntrackWriter& writer, ConntrackReader& reader,
             FrameTransport& transport);

  void set_role(Role role);
  Role role() const { return role_; }
  void set_filter(LocalFilter filter) { filter_ = std::move(filter); }

  // --- Source side ---
  void on_local_change(const FlowChange& change);  // buffered until flush()
  void flush();
  void on_overrun();  // events were lost: resend the whole table
  void bulk_sync();

  // --- link events ---
  void on_connected();
  void on_disconnected();
  // Returns false when the peer must be disconnected (protocol violation).
  bool on_frame(const wire::Frame& frame);
  void on_bad_frame(const std::string& error);

  // Graceful handover: sends a Barrier; `done(true)` runs when the peer acknowledged that it
  // applied every earlier frame. Returns false (and does not call `done`) if the link is down.
  bool request_barrier(std::function<void()> done);

  bool peer_hello_seen() const { return peer_hello_seen_; }
  const ReplicatorCounters& counters() const { return counters_; }

 private:
  void send_batch(std::vector<FlowChange>& changes);
  void apply_batch(const wire::FlowBatch& batch);
  bool on_hello(const wire::Hello& hello);

  Options options_;
  ConntrackWriter& writer_;
  ConntrackReader& reader_;
  FrameTransport& transport_;
  LocalFilter filter_;
  Role role_ = Role::Sink;
  std::vector<FlowChange> pending_;
  uint64_t next_seq_ = 1;
  uint64_t expected_seq_ = 0;  // 0: none seen yet on this connection
  bool peer_hello_seen_ = false;
  uint64_t next_barrier_token_ = 1;
  uint64_t awaited_barrier_token_ = 0;
  std::function<void()> barrier_done_;
  ReplicatorCounters counters_;
};

const char* to_string(Replicator::Role role);

}  // namespace fwha::sync
