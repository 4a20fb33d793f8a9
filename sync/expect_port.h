// The kernel's expectation table as fwha sees it: the same kind of thin seam as
// conntrack_port.h, so ExpectSync is unit-tested against a fake and the lab proves the real
// adapter (expect_netlink.cpp).
#pragma once

#include <functional>
#include <memory>
#include <system_error>

#include "sync/expectation.h"

namespace fwha::sync {

class ExpectWriter {
 public:
  virtual ~ExpectWriter() = default;
  // New: create (or refresh) the expectation; ENOENT when its master connection is not in
  // the table (yet). Destroy: delete; a missing one is not an error.
  virtual std::error_code apply(const ExpectChange& change) = 0;
};

class ExpectReader {
 public:
  virtual ~ExpectReader() = default;
  virtual std::error_code dump(const std::function<void(const ExpectEntry&)>& visit) = 0;
};

// Subscription to expectation events (new, destroy); non-blocking like ConntrackEvents.
class ExpectEvents {
 public:
  virtual ~ExpectEvents() = default;
  virtual int fd() const = 0;
  // std::errc::no_buffer_space when events were lost (the caller sends a fresh snapshot).
  virtual std::error_code drain(const std::function<void(const ExpectChange&)>& on_change) = 0;
};

std::unique_ptr<ExpectWriter> make_netlink_expect_writer(std::error_code& ec);
std::unique_ptr<ExpectReader> make_netlink_expect_reader(std::error_code& ec);
std::unique_ptr<ExpectEvents> make_netlink_expect_events(std::error_code& ec);

}  // namespace fwha::sync
