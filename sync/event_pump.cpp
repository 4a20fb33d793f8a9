#include "sync/event_pump.h"

#include "util/log.h"

namespace fwha::sync {

EventPump::EventPump(boost::asio::io_context& io, Replicator& replicator, size_t rcvbuf_bytes,
                     std::chrono::microseconds coalesce, size_t hold_entries,
                     OpenEvents open_events)
    : io_(io),
      replicator_(replicator),
      rcvbuf_bytes_(rcvbuf_bytes),
      coalesce_(coalesce),
      hold_(hold_entries, coalesce),
      ticks_(io),
      open_events_(std::move(open_events)) {}

EventPump::~EventPump() {
  after_round_ = nullptr;  // the owner is going away too
  stop();
}

std::error_code EventPump::start() {
  if (events_) return {};
  std::error_code ec;
  if (!hold_.enabled() && coalesce_.count() > 0 && !ticks_.is_open()) {
    if (auto tec = ticks_.open()) return tec;
  }
  events_ = open_events_(rcvbuf_bytes_, ec);
  if (!events_) return ec;
  log::info("sync", "listening to conntrack events");
  wait();
  return {};
}

void EventPump::stop() {
  if (!events_) return;
  if (ticks_.is_open()) {
    ticks_.stop();
    ticks_.cancel();
  }
  // What was read and held goes out first: the caller is stepping down or stopping, and the
  // replicator would drop it with its source state.
  send_held();
  unwatch();
  uncarried_before_ += events_->uncarried();
  events_.reset();
  log::info("sync", "stopped listening to conntrack events");
  if (after_round_) after_round_();
}

void EventPump::drain_now() { drain_count(); }

void EventPump::send_held() {
  if (hold_.holding()) send_pending();
}

void EventPump::send_pending() {
  hold_.sent();
  replicator_.flush();
}

size_t EventPump::drain_count() {
  const size_t n = read_events();
  send_pending();
  return n;
}

void EventPump::read_and_hold() {
  const size_t n = read_events();
  if (hold_.send_now(EventHold::Clock::now(), n, replicator_.pending_count())) send_pending();
}

size_t EventPump::read_events() {
  if (!events_) return 0;
  size_t n = 0;
  auto ec = events_->drain([this, &n](const FlowChange& c) {
    ++n;
    replicator_.on_local_change(c);
  });
  if (ec == std::errc::no_buffer_space) {
    replicator_.on_overrun();
  } else if (ec) {
    // Whatever the socket held may be gone with the failed read: repaired like an overrun.
    replicator_.on_overrun("reading them failed: " + ec.message());
  }
  return n;
}

// Asio registers a descriptor with epoll edge-triggered for as long as it holds it, so every
// event the kernel queues would wake the loop even with no read pending: at 10k new flows/s
// that was a wake-up per flow while coalescing (~15 us of CPU each on this guest). So the
// socket is in the reactor only while the pump is idle, and out of it while it coalesces.
void EventPump::watch() {
  if (!descriptor_) {
    descriptor_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, events_->fd());
  }
}

// The adapter owns the socket: release() takes it out of epoll without closing it.
void EventPump::unwatch() {
  if (!descriptor_) return;
  descriptor_->release();
  descriptor_.reset();
}

// Idle: wait until an event arrives, send it at once, then coalesce. Holding: read at
// every arrival, and send when the hold says so.
void EventPump::wait() {
  watch();
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec || !events_) return;
                            if (!hold_.enabled()) {
                              drain_now();
                              if (events_) wait_then_drain();
                              return;
                            }
                            read_and_hold();
                            if (events_) wait();
                          });
}

// Busy: drain at every tick while events keep coming; back to waiting once a drain finds
// none. The ticks run for the whole busy spell (one timerfd_settime to start, one to stop).
void EventPump::wait_then_drain() {
  if (coalesce_.count() <= 0) return wait();
  unwatch();
  if (!ticks_.running()) {
    if (auto ec = ticks_.start(coalesce_)) {
      log::error("sync", "event coalescing timer failed (" + ec.message() +
                             "); reading events as they come");
      coalesce_ = std::chrono::microseconds(0);
      return wait();
    }
  }
  ticks_.async_wait([this](boost::system::error_code ec) {
    if (ec || !events_) return;
    if (drain_count() > 0) {
      if (events_) wait_then_drain();
    } else if (events_) {
      ticks_.stop();
      wait();
    }
    if (after_round_) after_round_();
  });
}

}  // namespace fwha::sync
