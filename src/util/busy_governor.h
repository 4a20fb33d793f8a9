// Real-time while idle, normal while busy: the scheduling class of fwhad's replication thread.
//
// Why: at 10k new flows/s the thread works ~15 % of a core in short bursts, and at normal
// priority other processes on the node delay it by milliseconds now and then (replication lag
// p99 1-12 ms on the test VM, against 0.5-0.7 ms as SCHED_RR). But a real-time thread that
// saturates a core (a 300k/s burst, a bulk write of a million entries) starves ksoftirqd, the
// thread that delivers packets once softirq load is high, the VRRP adverts included: the
// benchmark once saw a false takeover that way. So the thread is real-time only while it
// uses less than `demote_above` of a core, and back to normal priority while it is busy.
//
// After table-sized work (bulk_work) the thread is real-time again at the first quiet window
// once the work is over, not after the calm second a busy spell needs: every reconciliation
// round is such work (at connect, then every 30 s), even at an empty table, and waiting a calm
// second after each left the thread at normal priority 1-2 s in every 30 (the benchmark's lag
// p99 came from that: 0.87 ms over a whole run, 0.49 ms over its part after both threads
// were real-time again).
//
// Pure: fed one sample per window (CPU time used / wall time), it says which class to run in.
#pragma once

#include <chrono>

namespace fwha::rt {

class BusyGovernor {
 public:
  enum class Class { RealTime, Normal };
  struct Options {
    double demote_above = 0.5;   // busier than this in one window: normal priority at once
    double promote_below = 0.25;  // real-time again after `calm` of windows below this
    std::chrono::milliseconds calm{1000};
    // Table work that has used under `promote_below` for this long no longer holds the
    // thread at normal priority: a sink whose source dropped its answer without RepairEnd
    // (it lost the Master role) believes in a repair until the next round or a reconnect.
    std::chrono::milliseconds idle_table_work{10000};
  };

  BusyGovernor() : BusyGovernor(Options{}) {}
  explicit BusyGovernor(Options options) : options_(options) {}

  // `busy`: the fraction of one core the thread used over the last window; `table_work`:
  // table-sized work is still running (it keeps the thread at normal priority, however
  // quiet the window: a repair answer paced by the peer's acks has idle gaps; but see
  // Options::idle_table_work).
  Class sample(double busy, std::chrono::steady_clock::time_point now, bool table_work = false);
  // Table-sized work starts now (a reconciliation dump, a repair answer, a repair being
  // applied): normal priority at once rather than after a busy window, during which a
  // real-time thread would hold its CPU for ~100 ms (a 114 ms traffic gap in the failover
  // benchmark, at 1M entries, when a new Master's first round started). Real-time again at
  // the first window below `promote_below` once the work is over.
  Class bulk_work(std::chrono::steady_clock::time_point now);
  Class current() const { return class_; }
  // At normal priority because of bulk_work(), not of a busy spell of its own.
  bool after_table_work() const { return after_table_work_; }

 private:
  Options options_;
  Class class_ = Class::RealTime;
  std::chrono::steady_clock::time_point last_busy_{};
  bool after_table_work_ = false;  // normal because of bulk_work(), not of a busy window
  bool work_ending_ = false;  // the next window without table work is the one it ended in
};

}  // namespace fwha::rt
