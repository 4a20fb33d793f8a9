#include "util/busy_governor.h"

namespace fwha::rt {

BusyGovernor::Class BusyGovernor::sample(double busy, std::chrono::steady_clock::time_point now) {
  if (busy >= options_.promote_below) last_busy_ = now;
  if (class_ == Class::RealTime && busy > options_.demote_above) {
    class_ = Class::Normal;
  } else if (class_ == Class::Normal && now - last_busy_ >= options_.calm) {
    class_ = Class::RealTime;
  }
  return class_;
}

BusyGovernor::Class BusyGovernor::bulk_work(std::chrono::steady_clock::time_point now) {
  last_busy_ = now;
  class_ = Class::Normal;
  return class_;
}

}  // namespace fwha::rt
