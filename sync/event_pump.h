// Feeds the Master's conntrack events into the Replicator from the Asio loop: waits for the
// event socket to become readable, drains it, and flushes one batch per wake-up so a burst
// goes out as few frames. An overrun (ENOBUFS) is turned into a resync, never just logged.
//
// Coalescing: once a drain has found events, the pump drains again at every tick of a
// periodic timer (`coalesce` apart) until a drain finds none, so a steady trickle (10k new
// flows/s arrive ~one per 100 us) goes out a few per frame instead of one frame, one write
// and one ack per flow: most of the per-entry CPU at such rates is per-wake-up cost. An idle
// pump waits for readability, so the first event of a burst is sent at once; later ones wait
// at most `coalesce` (kDefaultEventCoalesceUs, 300 us). Ticks, not a sleep after each drain:
// the wait is bounded by `coalesce` itself, and a round costs five system calls (wait, tick
// read, event read, send, and the failed read with which Asio starts the next wait:
// util/periodic_timer.h; before, the timer was re-armed each round, each drain ended with a
// read that failed, and the send's completion cost a poll of its own);
// docs/performance.md has the trade-off measured.
//
// Holding (`hold_entries` >= 2, sync/event_hold.h) replaces the window: the pump waits for
// readability at all times, reads at every wake-up, and sends once that many changes are
// pending once the events are a stream (gaps shorter than `coalesce`). No timer runs; the
// owner's heartbeat sends what a spell's last event left held (send_held()).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "fwha/asio.h"
#include "fwha/sync_defaults.h"
#include "sync/conntrack_port.h"
#include "sync/event_hold.h"
#include "sync/replicator.h"
#include "util/periodic_timer.h"

namespace fwha::sync {

class EventPump {
 public:
  // Opens the event source at start() (tests pass a fake; make_netlink_events otherwise).
  using OpenEvents =
      std::function<std::unique_ptr<ConntrackEvents>(size_t rcvbuf_bytes, std::error_code& ec)>;

  EventPump(boost::asio::io_context& io, Replicator& replicator, size_t rcvbuf_bytes,
            std::chrono::microseconds coalesce =
                std::chrono::microseconds(kDefaultEventCoalesceUs),
            size_t hold_entries = 0, OpenEvents open_events = make_netlink_events);
  ~EventPump();

  std::error_code start();  // subscribe; events from now on are replicated
  void stop();  // sends what is held, unsubscribes (the kernel stops generating events for us)
  bool running() const { return events_ != nullptr; }
  // Reads what is pending right now (used before a graceful handover).
  void drain_now();
  // Holding: sends what is held, if anything (the heartbeat's duty: at most one late).
  void send_held();
  // Busy: events keep coming, and the pump drains them at every tick (`coalesce` apart).
  bool busy() const { return events_ && ticks_.running(); }
  std::chrono::microseconds coalesce() const { return coalesce_; }
  // The event socket's unread bytes and limit (nullopt when not subscribed).
  std::optional<ConntrackEvents::Backlog> backlog() const {
    return events_ ? events_->backlog() : std::nullopt;
  }
  // Events read that could not be carried, over every subscription so far.
  uint64_t uncarried() const { return uncarried_before_ + (events_ ? events_->uncarried() : 0); }
  // Runs after every busy round, after the round that ends a busy spell, and after stop():
  // the owner's other periodic duties ride on the rounds instead of waking the thread
  // themselves (SyncService's heartbeat).
  void set_after_round(std::function<void()> after_round) { after_round_ = std::move(after_round); }

 private:
  void watch();
  void unwatch();
  void wait();
  void wait_then_drain();
  size_t drain_count();  // drain_now(), returning the events read
  size_t read_events();  // into the replicator, not sent yet; returns the events read
  void read_and_hold();  // holding: reads, and sends when the hold says so
  void send_pending();   // whatever the replicator holds, and the hold is over

  boost::asio::io_context& io_;
  Replicator& replicator_;
  size_t rcvbuf_bytes_;
  std::chrono::microseconds coalesce_;
  EventHold hold_;
  PeriodicTimer ticks_;  // coalesced drains while busy (not when holding)
  OpenEvents open_events_;
  std::unique_ptr<ConntrackEvents> events_;
  uint64_t uncarried_before_ = 0;  // of the subscriptions before events_
  std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor_;
  std::function<void()> after_round_;
};

}  // namespace fwha::sync
