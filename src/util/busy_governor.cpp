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
    return class_;
  }
  if (table_work) {
    work_ending_ = true;
    if (now - last_busy_ < options_.idle_table_work) return class_;
  } else if (work_ending_) {
    work_ending_ = false;  // the window the work ended in may be busy with its tail
  } else if (busy > options_.demote_above) {
    after_table_work_ = false;  // a busy spell of its own, after the work: a calm second
  }
  if ((after_table_work_ && busy < options_.promote_below) ||
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
  work_ending_ = true;
  return class_;
}

}  // namespace fwha::rt
