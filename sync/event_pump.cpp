#include "sync/event_pump.h"

#include <unistd.h>

#include "util/log.h"

namespace fwha::sync {

EventPump::EventPump(boost::asio::io_context& io, Replicator& replicator, size_t rcvbuf_bytes,
                     std::chrono::microseconds coalesce)
    : io_(io), replicator_(replicator), rcvbuf_bytes_(rcvbuf_bytes), coalesce_(coalesce),
      timer_(io) {}

EventPump::~EventPump() { stop(); }

std::error_code EventPump::start() {
  if (events_) return {};
  std::error_code ec;
  events_ = make_netlink_events(rcvbuf_bytes_, ec);
  if (!events_) return ec;
  // Asio owns what it is given and closes it; the adapter owns the netlink socket. A dup()
  // lets each close its own descriptor.
  int fd = dup(events_->fd());
  if (fd < 0) {
    events_.reset();
    return {errno, std::generic_category()};
  }
  descriptor_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
  log::info("sync", "listening to conntrack events");
  wait();
  return {};
}

void EventPump::stop() {
  if (!events_) return;
  boost::system::error_code ec;
  timer_.cancel();
  descriptor_->close(ec);
  descriptor_.reset();
  events_.reset();
  log::info("sync", "stopped listening to conntrack events");
}

void EventPump::drain_now() { drain_count(); }

size_t EventPump::drain_count() {
  if (!events_) return 0;
  size_t n = 0;
  auto ec = events_->drain([this, &n](const FlowChange& c) {
    ++n;
    replicator_.on_local_change(c);
  });
  if (ec == std::errc::no_buffer_space) {
    replicator_.on_overrun();
  } else if (ec) {
    log::error("sync", "reading conntrack events failed: " + ec.message());
  }
  replicator_.flush();
  return n;
}

// Idle: wait until an event arrives, send it at once, then coalesce.
void EventPump::wait() {
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec || !events_) return;
                            drain_now();
                            if (events_) wait_then_drain();
                          });
}

// Busy: drain every `coalesce_` while events keep coming; back to waiting once a drain finds
// none.
void EventPump::wait_then_drain() {
  if (coalesce_.count() <= 0) return wait();
  timer_.expires_after(coalesce_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !events_) return;
    if (drain_count() > 0) {
      if (events_) wait_then_drain();
    } else if (events_) {
      wait();
    }
  });
}

}  // namespace fwha::sync
