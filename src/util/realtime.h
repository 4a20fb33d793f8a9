// Real-time scheduling for fwhad's election thread: an advert late by a few hundred
// milliseconds is a false takeover, and a normal-priority daemon waits behind whatever else
// runs on the node. The thread does microseconds of work per advert interval, so it cannot
// starve anything. (The replication thread is not made real-time: see daemon.cpp.)
#pragma once

#include <string>
#include <system_error>

namespace fwha::rt {

// Moves the calling thread to SCHED_RR at `priority` (1-99); 0 leaves it as it is. Errors
// (EPERM without CAP_SYS_NICE, or a cgroup without a real-time budget) are returned so the
// caller can say so and run on at normal priority.
std::error_code set_thread_realtime(int priority);

// Logs the outcome for `what` ("election", "replication"): a warning naming the cause and the
// consequence when it failed.
void apply_or_warn(int priority, const std::string& what);

// Moves the calling thread back to SCHED_OTHER (from SCHED_RR).
std::error_code set_thread_normal();

// Gives the calling thread nice value `nice` (-20..19; 0 leaves it), logging a refusal.
void set_thread_nice_or_warn(int nice, const std::string& what);

// The election and the replication thread run on different CPUs. A real-time thread woken
// on a CPU where another thread is inside a long system call waits until that call ends
// (kernels without full preemption, such as this one and Debian's default): a soak traced
// with perf had the election thread runnable for 38-41 ms behind the replication thread's
// 48 ms system call, and the Backup took over. On its own CPU it only ever waits behind
// preemptible work.
// The CPU kept for the election thread: `wanted` if this process may run on it (else a warning
// and the default), by default (-1) the highest one it may run on; -1 with fewer than two
// allowed CPUs (then nothing is pinned).
int election_cpu(int wanted = -1);
// Pins the calling thread to `cpu` (`exclusive`: only that one) or to every allowed CPU but
// `cpu`; -1 does nothing. Logs the outcome for `what`.
void pin_or_warn(int cpu, bool exclusive, const std::string& what);

}  // namespace fwha::rt
