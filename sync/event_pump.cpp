#include "sync/event_pump.h"

#include <unistd.h>

#include "util/log.h"

namespace fwha::sync {

EventPump::EventPump(boost::asio::io_context& io, Replicator& replicator, size_t rcvbuf_bytes)
    : io_(io), replicator_(replicator), rcvbuf_bytes_(rcvbuf_bytes) {}

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
  descriptor_->close(ec);
  descriptor_.reset();
  events_.reset();
  log::info("sync", "stopped listening to conntrack events");
}

void EventPump::drain_now() {
  if (!events_) return;
  auto ec = events_->drain([this](const FlowChange& c) { replicator_.on_local_change(c); });
  if (ec == std::errc::no_buffer_space) {
    replicator_.on_overrun();
  } else if (ec) {
    log::error("sync", "reading conntrack events failed: " + ec.message());
  }
  replicator_.flush();
}

void EventPump::wait() {
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec || !events_) return;
                            drain_now();
                            if (events_) wait();
                          });
}

}  // namespace fwha::sync
