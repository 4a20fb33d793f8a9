// Replication in a thread of its own, with its own Asio loop: kernel dumps, bulk writes and
// reconciliation rounds take seconds at a million entries and must never delay the VRRP
// adverts and timers on the main loop (DESIGN.md: no head-of-line blocking of liveness).
//
// Ownership: everything below (sync link, replicator, event pump, kernel sockets) lives and
// runs on the sync thread only. The main thread talks to it through post() and reads a
// snapshot of its status; results come back through callbacks the caller posts to its own
// loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "fwha/asio.h"
#include "fwha/ip_address.h"
#include "fwha/sync_defaults.h"
#include "sync/expect_sync.h"
#include "sync/health_beat.h"
#include "sync/peer_silence.h"
#include "sync/replicator.h"
#include "util/busy_governor.h"

namespace fwha::sync {

class EventPump;
class ExpectPump;
class SyncLink;

class SyncService {
 public:
  struct Options {
    std::string node_name;
    std::string peer_name;
    uint32_t vrrp_priority = 0;  // ours, told to the peer (Hello)
    IpAddress local_address;
    IpAddress peer_address;
    uint16_t port = 7788;
    bool replicate = true;
    std::chrono::milliseconds reconcile_interval{30000};
    std::chrono::microseconds event_coalesce{kDefaultEventCoalesceUs};
    size_t event_hold_entries = kDefaultEventHoldEntries;  // sync/event_hold.h
    // SCHED_RR for the replication thread while it is mostly idle (util/busy_governor.h);
    // 0: always normal priority.
    int realtime_priority = 0;
    int nice = 0;               // when not real-time
    int avoid_cpu = -1;         // the election thread's CPU (util/realtime.h); -1: any
    size_t event_buffer_bytes = 64 * 1024 * 1024;
    // The peer asks this node to take the group over (it holds everything the peer sent).
    // Called on the sync thread; the owner decides on its own thread and calls
    // `answer(took_over)` from any thread. Unset: refused.
    std::function<void(std::function<void(bool took_over)> answer)> on_takeover_request;
    // Called on the sync thread whenever a reconciliation round ends complete on the sink:
    // the table holds the peer's state (a rejoining node may preempt).
    std::function<void()> on_synced;
    // The kernel adapters, opened by start(). Unset: the netlink ones. Tests pass fakes (with
    // `replicate` false nothing else touches the kernel: the event pumps stay closed).
    struct KernelPorts {
      std::unique_ptr<ConntrackWriter> writer;
      std::unique_ptr<ConntrackReader> reader;
      std::unique_ptr<ExpectWriter> expect_writer;
      std::unique_ptr<ExpectReader> expect_reader;
    };
    std::function<KernelPorts()> kernel_ports;
  };

  enum class Handover {
    TookOver,     // the peer applied everything we sent and is Master now
    Refused,      // it applied everything but cannot be Master (Fault, starting, Master)
    Unreachable,  // no sync link: nothing was asked
  };

  struct Status {
    bool connected = false;
    std::string role;
    size_t link_queue_bytes = 0;
    size_t unacked_bytes = 0;
    int64_t lag_ms = 0;
    // Master: conntrack events the kernel holds for us, unread, and the most it will hold
    // before it drops some (an overrun); 0 when not listening.
    size_t event_backlog_bytes = 0;
    size_t event_buffer_bytes = 0;
    uint64_t connects = 0;
    uint64_t rejected_connections = 0;
    uint64_t link_queue_overflows = 0;  // link resets: the send queue passed its bound
    uint64_t peer_silences = 0;         // link resets: the peer said nothing (peer_silence.h)
    ReplicatorCounters counters;
    ReconcileCounters reconcile;
    WriterCounters writer;
    ExpectCounters expect;
    bool holds_peer_state = false;  // sink: a complete round, no repair running
    uint32_t peer_vrrp_priority = 0;  // from the peer's Hello; 0: not known
    uint64_t heartbeats_sent = 0;     // as Master; few under load (the flows say it)
    uint64_t events_uncarried = 0;    // conntrack events that could not be carried
    std::chrono::steady_clock::time_point taken{};
  };

  explicit SyncService(Options options);
  ~SyncService();

  // Opens the kernel sockets and the listening socket, then starts the thread.
  std::error_code start(std::string& what_failed);
  void stop();

  void set_filter(LocalFilter filter);
  // `for_peer_state`: demoted because two Masters met and only the peer holds the group's
  // state: the peer is asked for a reconciliation round at once (Replicator::stepped_down()).
  void set_master(bool master, bool for_peer_state = false);
  // Handover (switchover, graceful stop, carrier loss): reads the last events, sends them,
  // then a barrier asking the peer to take the group over once it applied them (TCP keeps
  // the order, so it then holds our state). `done` runs on the sync thread when the peer
  // answered, or at once when the link is down.
  void hand_over(std::function<void(Handover)> done);
  // Before a takeover (the Master is gone): reads and applies what the peer sent that is still
  // unread (a Backup behind in a burst, or in a repair, has a backlog in its socket), within
  // `budget`, then `done(holds_peer_state)` on the sync thread.
  void settle_input(std::chrono::milliseconds budget, std::function<void(bool)> done);
  // This node's tracked next-hops fail (any thread): told to the peer at once (a beat posted
  // to the sync thread), and again after every reconnect.
  void set_degraded(bool degraded);
  // What the peer last said of its own (false while the link is down or it never said).
  bool peer_degraded() const { return peer_degraded_.load(std::memory_order_relaxed); }
  // Whether this node's table holds the group's state: false from start until its first
  // complete sync from the peer, or until it becomes Master while no peer holding the state
  // is connected (a cold start: its own table is the state then), or, as Master, loses the
  // peer's connection. Any thread.
  bool holds_state() const { return holds_state_.load(std::memory_order_relaxed); }
  // The peer's, as it said in its Health frame (true while the link is down or it never said:
  // without knowledge, RFC 5798 decides).
  bool peer_holds_state() const { return peer_holds_state_.load(std::memory_order_relaxed); }
  // When the peer last spoke as the Master: a Heartbeat or a FlowBatch (any thread; nullopt:
  // never).
  std::optional<std::chrono::steady_clock::time_point> last_master_heartbeat() const;
  // The latest snapshot, published by the sync thread every tick: never blocks the caller
  // (the VRRP loop), even while the sync thread is in a long dump.
  Status status() const;

 private:
  void tick();
  void publish();
  void govern();  // every 100 ms: real-time or normal priority (busy_governor.h)
  void bulk_work_started();  // normal priority now (busy_governor.h)
  // Applies the governor's class to this thread if it differs from `before`. `routine`: the
  // change comes with table-sized work (every reconciliation round: the drop when it starts,
  // the return when it is over), logged at debug level.
  void apply_class(rt::BusyGovernor::Class before, const std::string& why, bool routine);
  // The Master's heartbeat every kHeartbeat, and both nodes' Health (health_beat.h): on a
  // timer of its own (a Master's every kHeartbeat, a Backup's at the Health's next repeat),
  // or, while the event pump is busy, after its rounds (beats_in_rounds_). A Backup also
  // beats after each burst of frames it reads and when its degraded flag changes.
  void heartbeat();
  void after_pump_round();
  void arm_heartbeat();  // at next_beat_
  void beat(std::chrono::steady_clock::time_point now);
  void beat_now() { beat(std::chrono::steady_clock::now()); }
  void settle_step(std::chrono::steady_clock::time_point deadline,
                   std::function<void(bool)> done);

  Options options_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer wake_timer_;  // the replicator's coalesced acks
  boost::asio::steady_timer govern_timer_;
  bool refusal_warned_ = false;         // a refused priority change was logged as a warning
  rt::BusyGovernor governor_;
  std::chrono::steady_clock::time_point govern_wall_{};
  std::chrono::nanoseconds govern_cpu_{};
  static constexpr std::chrono::milliseconds kHeartbeat{5};
  boost::asio::steady_timer heartbeat_timer_;
  std::chrono::steady_clock::time_point next_beat_{};
  std::chrono::steady_clock::time_point last_heartbeat_sent_{};
  uint64_t heartbeats_sent_ = 0;
  bool beats_in_rounds_ = false;
  std::atomic<int64_t> last_heartbeat_ns_{0};  // steady clock, written by the sync thread
  std::atomic<bool> degraded_{false};
  std::atomic<bool> peer_degraded_{false};
  std::atomic<bool> holds_state_{false};
  std::atomic<bool> peer_holds_state_{true};
  HealthBeat health_beat_;  // sync thread
  PeerSilence silence_;
  uint64_t peer_silences_ = 0;
  std::optional<std::chrono::steady_clock::time_point> silence_alerted_at_;
  void check_silence();  // tick(): closes a connection the peer has gone silent on
  std::unique_ptr<ConntrackWriter> writer_;
  std::unique_ptr<ConntrackReader> reader_;
  std::unique_ptr<SyncLink> link_;
  std::unique_ptr<Replicator> replicator_;
  std::unique_ptr<EventPump> pump_;
  std::unique_ptr<ExpectWriter> expect_writer_;
  std::unique_ptr<ExpectReader> expect_reader_;
  std::unique_ptr<ExpectSync> expect_;
  std::unique_ptr<ExpectPump> expect_pump_;
  std::thread thread_;
  mutable std::mutex status_mutex_;
  Status status_;
};

}  // namespace fwha::sync
