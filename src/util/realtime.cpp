#include "util/realtime.h"

#include <pthread.h>
#include <sched.h>

#include "util/log.h"

namespace fwha::rt {

std::error_code set_thread_realtime(int priority) {
  if (priority <= 0) return {};
  sched_param p{};
  p.sched_priority = priority;
  const int err = pthread_setschedparam(pthread_self(), SCHED_RR, &p);
  return err == 0 ? std::error_code{} : std::error_code(err, std::generic_category());
}

void apply_or_warn(int priority, const std::string& what) {
  if (priority <= 0) return;
  if (auto ec = set_thread_realtime(priority)) {
    log::warning("daemon", what + " thread stays at normal priority: SCHED_RR " +
                               std::to_string(priority) + " refused (" + ec.message() +
                               "; needs CAP_SYS_NICE and a real-time budget): adverts and "
                               "replication may be delayed under CPU load");
    return;
  }
  log::info("daemon", what + " thread runs SCHED_RR " + std::to_string(priority));
}

}  // namespace fwha::rt
