// Feeds the Master's conntrack events into the Replicator from the Asio loop: waits for the
// event socket to become readable, drains it, and flushes one batch per wake-up so a burst
// goes out as few frames. An overrun (ENOBUFS) is turned into a resync, never just logged.
#pragma once

#include <memory>

#include "fwha/asio.h"
#include "sync/conntrack_port.h"
#include "sync/replicator.h"

namespace fwha::sync {

class EventPump {
 public:
  EventPump(boost::asio::io_context& io, Replicator& replicator, size_t rcvbuf_bytes);
  ~EventPump();

  std::error_code start();  // subscribe; events from now on are replicated
  void stop();              // unsubscribe (the kernel stops generating events for us)
  bool running() const { return events_ != nullptr; }
  // Reads what is pending right now (used before a graceful handover).
  void drain_now();

 private:
  void wait();

  boost::asio::io_context& io_;
  Replicator& replicator_;
  size_t rcvbuf_bytes_;
  std::unique_ptr<ConntrackEvents> events_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor_;
};

}  // namespace fwha::sync
