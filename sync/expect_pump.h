// Feeds the Master's expectation events into ExpectSync from the sync thread's Asio loop, the
// way EventPump does for conntrack events; an overrun becomes a snapshot.
#pragma once

#include <memory>

#include "fwha/asio.h"
#include "sync/expect_port.h"
#include "sync/expect_sync.h"

namespace fwha::sync {

class ExpectPump {
 public:
  ExpectPump(boost::asio::io_context& io, ExpectSync& sync) : io_(io), sync_(sync) {}
  ~ExpectPump() { stop(); }

  std::error_code start();
  void stop();
  void drain_now();

 private:
  void wait();

  boost::asio::io_context& io_;
  ExpectSync& sync_;
  std::unique_ptr<ExpectEvents> events_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor_;
};

}  // namespace fwha::sync
