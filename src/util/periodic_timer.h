// A timer that ticks every `period` until stopped, for work done in rounds (the event pump's
// coalesced drains). An Asio steady_timer re-armed per round costs a timerfd_settime per
// round; on this kind of guest a system call costs microseconds, and at 10k flows/s in rounds
// of 250 us the timer alone was ~15 % of the Master's replication CPU (perf,
// docs/performance.md). A periodic timerfd is armed once per busy spell and waited for with a
// read of the expiry count, not with async_wait: Asio re-arms a descriptor with an epoll_ctl
// on every async_wait, and an unread count would report the next wait ready at once. A read
// that drains the count leaves the edge-triggered registration waiting for the next expiry.
// Boost 1.74's Asio (Debian 12) first tries each read at once, and for a descriptor it never
// learns that the count is drained, so a wait started before the next tick costs a read that
// fails (EAGAIN; perf trace: one per round). async_wait would cost its epoll_ctl instead, so
// a round is five calls either way (the event pump's: wait, this one, tick read, event read,
// send).
#pragma once

#include <sys/timerfd.h>

#include <cerrno>
#include <cstdint>
#include <chrono>
#include <system_error>
#include <utility>

#include "fwha/asio.h"

namespace fwha {

class PeriodicTimer {
 public:
  explicit PeriodicTimer(boost::asio::io_context& io) : descriptor_(io) {}
  PeriodicTimer(const PeriodicTimer&) = delete;
  PeriodicTimer& operator=(const PeriodicTimer&) = delete;

  // Opens the timerfd; call once before start(). The descriptor owns (and closes) it.
  std::error_code open() {
    const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return {errno, std::generic_category()};
    descriptor_.assign(fd);
    return {};
  }

  // Ticks every `period` from now on (re-arming restarts the phase).
  std::error_code start(std::chrono::microseconds period) { return set(period); }
  // No more ticks; a wait already pending stays pending until cancel().
  std::error_code stop() { return set(std::chrono::microseconds(0)); }
  void cancel() {
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
  }
  bool is_open() const { return descriptor_.is_open(); }
  bool running() const { return running_; }

  // The handler runs at the next tick (ticks missed meanwhile are counted, not queued).
  template <typename Handler>
  void async_wait(Handler&& h) {
    // A timerfd read returns the 8-byte count of expirations since the last one.
    descriptor_.async_read_some(boost::asio::buffer(expirations_),
                                [h = std::forward<Handler>(h)](boost::system::error_code ec,
                                                               size_t) mutable { h(ec); });
  }

 private:
  std::error_code set(std::chrono::microseconds period) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(period).count();
    itimerspec its{};
    its.it_interval.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    its.it_interval.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    its.it_value = its.it_interval;  // all zero: disarmed
    if (timerfd_settime(descriptor_.native_handle(), 0, &its, nullptr) != 0) {
      return {errno, std::generic_category()};
    }
    running_ = ns > 0;
    return {};
  }

  boost::asio::posix::stream_descriptor descriptor_;
  bool running_ = false;
  uint64_t expirations_[2] = {};
};

}  // namespace fwha
