#include "sync/expect_pump.h"

#include <unistd.h>

#include "util/log.h"

namespace fwha::sync {

std::error_code ExpectPump::start() {
  if (events_) return {};
  std::error_code ec;
  events_ = make_netlink_expect_events(ec);
  if (!events_) return ec;
  // Asio closes what it is given; the adapter closes its own socket (as in EventPump).
  const int fd = dup(events_->fd());
  if (fd < 0) {
    events_.reset();
    return {errno, std::generic_category()};
  }
  descriptor_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
  wait();
  return {};
}

void ExpectPump::stop() {
  if (!events_) return;
  boost::system::error_code ec;
  descriptor_->close(ec);
  descriptor_.reset();
  events_.reset();
}

void ExpectPump::drain_now() {
  if (!events_) return;
  const auto ec = events_->drain([this](const ExpectChange& c) { sync_.on_local_change(c); });
  if (ec == std::errc::no_buffer_space) {
    sync_.on_overrun();
  } else if (ec) {
    // What the socket held may be gone with the failed read: a snapshot, as for an overrun.
    log::error("sync", "reading expectation events failed: " + ec.message());
    sync_.on_overrun();
  }
  sync_.flush();
}

void ExpectPump::wait() {
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec || !events_) return;
                            drain_now();
                            if (events_) wait();
                          });
}

}  // namespace fwha::sync
