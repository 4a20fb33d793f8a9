#include "util/busy_governor.h"

namespace fwha::rt {

BusyGovernor::Class BusyGovernor::sample(double busy, std::chrono::steady_clock::time_point now,
                                         bool table_work) {
  if (busy >= options_.promote_below) last_busy_ = now;
  if (class_ == Class::RealTime) {
    if (busy > options_.demote_above) {
      class_ = Class::Normal;
      after_table_work_ = false;
    }
  } else if (table_work) {
    last_busy_ = now;
  } else if ((after_table_work_ && busy < options_.promote_below) ||
             now - last_busy_ >= options_.calm) {
    class_ = Class::RealTime;
    after_table_work_ = false;
  }
  return class_;
}

BusyGovernor::Class BusyGovernor::bulk_work(std::chrono::steady_clock::time_point now) {
  last_busy_ = now;
  class_ = Class::Normal;
  after_table_work_ = true;
  return class_;
}

}  // namespace fwha::rt
