#include "util/realtime.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "util/log.h"

namespace fwha::rt {

std::error_code set_thread_realtime(int priority) {
  if (priority <= 0) return {};
  sched_param p{};
  p.sched_priority = priority;
  const int err = pthread_setschedparam(pthread_self(), SCHED_RR, &p);
  return err == 0 ? std::error_code{} : std::error_code(err, std::generic_category());
}

std::error_code set_thread_normal() {
  sched_param p{};
  p.sched_priority = 0;
  const int err = pthread_setschedparam(pthread_self(), SCHED_OTHER, &p);
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

void set_thread_nice_or_warn(int nice, const std::string& what) {
  if (nice == 0) return;
  // On Linux the nice value is per thread: PRIO_PROCESS with the thread id.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) != 0) {
    log::warning("daemon", what + " thread stays at nice 0: nice " + std::to_string(nice) +
                               " refused (" + std::error_code(errno, std::generic_category()).message() +
                               ")");
    return;
  }
  log::info("daemon", what + " thread runs at nice " + std::to_string(nice));
}

int election_cpu(int wanted) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2) {
    if (wanted >= 0) {
      log::warning("daemon", "node.election_cpu = " + std::to_string(wanted) +
                                 " is not used: fwhad may run on fewer than two CPUs, so no "
                                 "thread is pinned");
    }
    return -1;
  }
  if (wanted >= 0) {
    if (wanted < CPU_SETSIZE && CPU_ISSET(wanted, &set)) return wanted;
    log::warning("daemon", "node.election_cpu = " + std::to_string(wanted) +
                               " is not a CPU fwhad may run on: the highest allowed one is used");
  }
  for (int cpu = CPU_SETSIZE - 1; cpu >= 0; --cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return -1;
}

void pin_or_warn(int cpu, bool exclusive, const std::string& what) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (exclusive) {
    CPU_SET(cpu, &set);
  } else {
    if (sched_getaffinity(0, sizeof set, &set) != 0) return;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) == 0) return;
  }
  const int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (err != 0) {
    log::warning("daemon", what + " thread not pinned (" +
                               std::error_code(err, std::generic_category()).message() + ")");
    return;
  }
  log::info("daemon", what + " thread runs " + (exclusive ? "on CPU " : "off CPU ") +
                          std::to_string(cpu));
}

}  // namespace fwha::rt
