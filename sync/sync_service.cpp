#include "sync/sync_service.h"

#include "sync/event_pump.h"
#include "sync/expect_pump.h"
#include "sync/sync_link.h"
#include "util/log.h"
#include "util/realtime.h"

namespace fwha::sync {

namespace asio = boost::asio;

SyncService::SyncService(Options options)
    : options_(std::move(options)),
      work_(asio::make_work_guard(io_)),
      tick_timer_(io_),
      wake_timer_(io_),
      govern_timer_(io_),
      heartbeat_timer_(io_) {}

SyncService::~SyncService() { stop(); }

std::error_code SyncService::start(std::string& what_failed) {
  std::error_code ec;
  if (options_.kernel_ports) {
    auto ports = options_.kernel_ports();
    writer_ = std::move(ports.writer);
    reader_ = std::move(ports.reader);
    expect_writer_ = std::move(ports.expect_writer);
    expect_reader_ = std::move(ports.expect_reader);
    ec = std::make_error_code(std::errc::invalid_argument);  // for a port left out
  } else {
    writer_ = make_netlink_writer(ec);
    reader_ = writer_ ? make_netlink_reader(ec) : nullptr;
    if (reader_) {
      expect_writer_ = make_netlink_expect_writer(ec);
      expect_reader_ = make_netlink_expect_reader(ec);
    }
  }
  if (!writer_) {
    what_failed = "conntrack netlink socket (writer)";
    return ec;
  }
  if (!reader_) {
    what_failed = "conntrack netlink socket (reader)";
    return ec;
  }
  if (!expect_writer_ || !expect_reader_) {
    what_failed = "conntrack expectation netlink socket";
    return ec;
  }
  SyncLink::Handlers h;
  h.connected = [this] {
    silence_.connected(std::chrono::steady_clock::now(), replicator_->counters().frames_received);
    replicator_->on_connected();  // the Hello goes first
    if (options_.replicate) expect_->on_connected();
  };
  h.disconnected = [this] {
    // A Master that took over while the old one was still connected (frozen, or handing over
    // before this node's first sync had ended) did not hold the state then; once no peer is
    // connected, its table is the group's state, as when it takes over alone (set_master).
    // Otherwise it would tell a restarted peer it holds none, and the peer would not wait for
    // it before preempting (the election's state knowledge).
    if (replicator_->role() == Replicator::Role::Source) {
      holds_state_.store(true, std::memory_order_relaxed);
    }
    replicator_->on_disconnected();
    beat_now();  // what the peer said of itself is void now
  };
  h.frame = [this](const wire::Frame& f) { return replicator_->on_frame(f); };
  h.bad_frame = [this](const std::string& e) { replicator_->on_bad_frame(e); };
  h.input_done = [this] {
    replicator_->after_input();
    // A Backup's first Health on a connection goes once the peer's Hello is read; later
    // ones on a change or at the repeat (the Master beats on its own timer).
    if (replicator_->role() != Replicator::Role::Source &&
        !health_beat_.told(link_->counters().connects)) {
      beat_now();
    }
  };
  link_ = std::make_unique<SyncLink>(io_, options_.local_address, options_.peer_address,
                                     options_.port, h);
  Replicator::Options ro;
  ro.node_name = options_.node_name;
  ro.peer_name = options_.peer_name;
  ro.vrrp_priority = options_.vrrp_priority;
  ro.replicate = options_.replicate;
  ro.reconcile_interval = options_.reconcile_interval;
  ro.speaks_every = PeerSilence::kSpeakEvery;  // beat() keeps the promise
  ro.before_dump = [this] { pump_->drain_now(); };
  ro.on_bulk_work = [this] { bulk_work_started(); };
  ro.wake_after = [this](std::chrono::microseconds d) {
    wake_timer_.expires_after(d);
    wake_timer_.async_wait([this](boost::system::error_code wec) {
      if (!wec) replicator_->on_wakeup();
    });
  };
  ro.on_takeover_request = [this](std::function<void(bool)> answer) {
    if (!options_.on_takeover_request) return answer(false);
    // The owner answers from its own thread; the answer is sent from ours.
    options_.on_takeover_request([this, answer = std::move(answer)](bool took_over) {
      asio::post(io_, [answer, took_over] { answer(took_over); });
    });
  };
  ro.defer = [this](std::function<void()> step) { asio::post(io_, std::move(step)); };
  ro.on_heartbeat = [this] {
    last_heartbeat_ns_.store(
        std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1),
        std::memory_order_relaxed);
  };
  ro.on_health = [this](bool degraded, bool holds_state) {
    if (holds_state != peer_holds_state_.exchange(holds_state, std::memory_order_relaxed)) {
      log::info("sync", std::string("peer ") + options_.peer_name +
                            (holds_state ? " holds the group's state"
                                         : " does not hold the group's state yet (syncing)"));
    }
    if (degraded != peer_degraded_.exchange(degraded, std::memory_order_relaxed)) {
      log::notice("sync", std::string("peer ") + options_.peer_name +
                              (degraded ? " is degraded (its tracked next-hops fail)"
                                        : " is no longer degraded"));
    }
  };
  ro.on_synced = [this] {
    // Told to the peer at once: a round can end in a step of our own (nothing to repair),
    // after the burst of frames that brought its summary.
    if (!holds_state_.exchange(true, std::memory_order_relaxed)) {
      asio::post(io_, [this] { beat_now(); });
    }
    if (options_.on_synced) options_.on_synced();
  };
  ro.on_peer_stepped_down = [this] {
    if (options_.replicate) expect_->on_connected();  // the snapshot, as on a new connection
  };
  ro.on_expect_batch = [this](const wire::ExpectBatch& b) {
    if (options_.replicate) expect_->on_batch(b);
  };
  replicator_ = std::make_unique<Replicator>(ro, *writer_, *reader_, *link_);
  expect_ = std::make_unique<ExpectSync>(*expect_writer_, *expect_reader_, *link_);
  expect_pump_ = std::make_unique<ExpectPump>(io_, *expect_);
  expect_->set_refresh_master([this](const FlowTuple& master, uint16_t zone) {
    FlowEntry e;
    if (replicator_->role() != Replicator::Role::Source || reader_->get(master, zone, e)) return;
    replicator_->on_local_change({FlowChangeKind::Update, e});
    replicator_->flush();
  });
  pump_ = std::make_unique<EventPump>(io_, *replicator_, options_.event_buffer_bytes,
                                      options_.event_coalesce, options_.event_hold_entries);
  pump_->set_after_round([this] { after_pump_round(); });
  if (auto lec = link_->start()) {
    what_failed = "sync link on " + options_.local_address.to_string() + ":" +
                  std::to_string(options_.port);
    return lec;
  }
  tick();
  heartbeat();
  thread_ = std::thread([this] {
    rt::pin_or_warn(options_.avoid_cpu, false, "replication");
    rt::set_thread_nice_or_warn(options_.nice, "replication");  // whenever it is not real-time
    rt::apply_or_warn(options_.realtime_priority, "replication");
    if (options_.realtime_priority > 0) govern();
    try {
      io_.run();
    } catch (const std::exception& e) {
      // A broken invariant: abort so systemd restarts us (docs/error-policy.md).
      log::error("sync", std::string("sync thread died: ") + e.what());
      std::abort();
    }
  });
  return {};
}

void SyncService::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    if (pump_) pump_->stop();  // first: its last round may re-arm the heartbeat
    tick_timer_.cancel();
    wake_timer_.cancel();
    govern_timer_.cancel();
    heartbeat_timer_.cancel();
    if (expect_pump_) expect_pump_->stop();
    if (link_) link_->stop();
    work_.reset();
    io_.stop();
  });
  thread_.join();
}

void SyncService::tick() {
  check_silence();
  replicator_->tick();
  expect_->tick();
  publish();
  tick_timer_.expires_after(std::chrono::milliseconds(100));
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

// Complete frames counted by the replicator (each one reached it, Hello or not), read every
// tick (100 ms): precise enough for a limit of seconds, and nothing per frame. Bytes still
// unread in our socket count as heard: then it is our thread that was late.
//
// A stuck peer that dials us (or whose kernel accepts our dials) is closed every 10 s for as
// long as it is stuck: the error goes to syslog once a minute at most, the link's notice
// (with the same cause) every time.
void SyncService::check_silence() {
  if (!link_->connected()) return;
  const auto now = std::chrono::steady_clock::now();
  const auto why = silence_.check(
      now, replicator_->counters().frames_received, [this] { return link_->unread_bytes() > 0; },
      replicator_->peer_hello_seen(), replicator_->peer_speaks_every());
  if (!why) return;
  ++peer_silences_;
  if (!silence_alerted_at_ || now - *silence_alerted_at_ >= std::chrono::minutes(1)) {
    silence_alerted_at_ = now;
    log::error("sync", "closing the sync link to " + options_.peer_name + ": " + *why +
                           " (" + std::to_string(peer_silences_) + " such closes so far)");
  }
  link_->close("peer silent: " + *why);
}

void SyncService::set_filter(LocalFilter filter) {
  asio::post(io_, [this, f = std::move(filter)]() mutable {
    expect_->set_filter(f);
    replicator_->set_filter(std::move(f));
  });
}

void SyncService::set_master(bool master, bool for_peer_state) {
  asio::post(io_, [this, master, for_peer_state] {
    // Master with no peer holding the state connected: our table is the state from now on.
    if (master && !(link_->connected() && replicator_->peer_hello_seen() &&
                    peer_holds_state_.load(std::memory_order_relaxed))) {
      holds_state_.store(true, std::memory_order_relaxed);
    }
    if (master) {
      if (options_.replicate) {
        if (auto ec = pump_->start()) {
          log::error("sync", "cannot listen to conntrack events: " + ec.message() +
                                 " (replication to the peer is stopped)");
        }
      }
      replicator_->set_role(Replicator::Role::Source);
      heartbeat();  // a Master's pace from now on (a Backup's timer may be 500 ms away)
      expect_->set_source(true);
      if (options_.replicate) {
        if (auto ec = expect_pump_->start()) {
          log::error("sync", "cannot listen to expectation events: " + ec.message());
        }
      }
    } else {
      pump_->stop();
      expect_pump_->stop();
      const bool was_source = replicator_->role() == Replicator::Role::Source;
      replicator_->set_role(Replicator::Role::Sink);
      expect_->set_source(false);
      if (was_source) {
        if (for_peer_state) {
          replicator_->stepped_down();  // a round: our table is not the state
        } else {
          replicator_->ask_for_what_was_ignored();  // a resume of what we dropped as Master
        }
      }
    }
  });
}

void SyncService::hand_over(std::function<void(Handover)> done) {
  asio::post(io_, [this, done = std::move(done)]() mutable {
    pump_->drain_now();
    expect_pump_->drain_now();
    auto shared = std::make_shared<std::function<void(Handover)>>(std::move(done));
    const bool asked = replicator_->request_barrier(
        [shared](bool took_over) {
          (*shared)(took_over ? Handover::TookOver : Handover::Refused);
        },
        /*take_over=*/true);
    if (!asked) (*shared)(Handover::Unreachable);
  });
}

namespace {
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}
}  // namespace

void SyncService::govern() {
  const auto now = std::chrono::steady_clock::now();
  const auto cpu = thread_cpu();
  if (govern_wall_ != std::chrono::steady_clock::time_point{} && now > govern_wall_) {
    const double busy = std::chrono::duration<double>(cpu - govern_cpu_).count() /
                        std::chrono::duration<double>(now - govern_wall_).count();
    const auto before = governor_.current();
    const bool table_work = replicator_->table_work_running();
    // Back to real-time now would be the routine end of table-sized work; not so after a busy
    // spell of its own, nor when work that has gone idle is let go (Options::idle_table_work).
    const bool work_over = governor_.after_table_work() && !table_work;
    governor_.sample(busy, now, table_work);
    apply_class(before, "busy (" + std::to_string(static_cast<int>(busy * 100)) + " % of a core)",
                work_over);
  }
  govern_wall_ = now;
  govern_cpu_ = cpu;
  govern_timer_.expires_after(std::chrono::milliseconds(100));
  govern_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) govern();
  });
}

void SyncService::bulk_work_started() {
  if (options_.realtime_priority <= 0) return;  // never real-time: nothing to drop
  const auto before = governor_.current();
  governor_.bulk_work(std::chrono::steady_clock::now());
  apply_class(before, "starts table-sized work", true);
}

// Table-sized work comes with every reconciliation round (every 30 s), so its two changes are
// debug lines; a change for load is not routine, and the first one the kernel refuses is a
// warning.
void SyncService::apply_class(rt::BusyGovernor::Class before, const std::string& why,
                              bool routine) {
  const auto after = governor_.current();
  if (after == before) return;
  const bool realtime = after == rt::BusyGovernor::Class::RealTime;
  const auto ec = realtime ? rt::set_thread_realtime(options_.realtime_priority)
                           : rt::set_thread_normal();
  auto level = routine ? log::Level::Debug : log::Level::Info;
  if (ec && !refusal_warned_) level = log::Level::Warning;  // once: it would recur every round
  refusal_warned_ = refusal_warned_ || static_cast<bool>(ec);
  log::write(level, "sync",
             std::string("replication thread ") +
                 (realtime ? "idle again: SCHED_RR " + std::to_string(options_.realtime_priority)
                           : why + ": normal priority, so softirqs keep their share") +
                 (ec ? " (refused: " + ec.message() + ")" : ""));
}

void SyncService::settle_input(std::chrono::milliseconds budget, std::function<void(bool)> done) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  asio::post(io_, [this, deadline, done = std::move(done)]() mutable {
    settle_step(deadline, std::move(done));
  });
}

// Each step lets the loop run the link's pending read (the post goes behind it), which
// applies what it read before we look again.
void SyncService::settle_step(std::chrono::steady_clock::time_point deadline,
                              std::function<void(bool)> done) {
  if (link_->unread_bytes() > 0 && std::chrono::steady_clock::now() < deadline) {
    asio::post(io_, [this, deadline, done = std::move(done)]() mutable {
      settle_step(deadline, std::move(done));
    });
    return;
  }
  if (link_->unread_bytes() > 0) {
    log::warning("sync", "takeover: " + std::to_string(link_->unread_bytes()) +
                             " bytes from the peer still unread at the deadline");
  }
  done(replicator_->holds_source_state());
}

// kHeartbeat (5 ms): a Backup at the default 10 ms advert interval asks whether the Master
// spoke within the last 15 ms before it takes over (daemon.cpp). A FlowBatch is the Master
// speaking too (to a peer whose Hello said it takes it so), so a Heartbeat goes only when
// neither went for kHeartbeat.
void SyncService::heartbeat() {
  pump_->send_held();  // a stream's last event, held for a successor that did not come
  beat(std::chrono::steady_clock::now());
  // While the event pump is busy its rounds (every event_coalesce_us) do this instead: under
  // load the flows are the heartbeat, and a timer of its own would wake the thread 200 times
  // a second (a wake-up costs ~17 us of CPU on the lab's guest: docs/performance.md). Not
  // with rounds longer than half a heartbeat (the window goes up to 100 ms): the Master would
  // be silent for a round.
  if (pump_->busy() && pump_->coalesce() <= kHeartbeat / 2) {
    beats_in_rounds_ = true;
    return;
  }
  arm_heartbeat();
}

void SyncService::after_pump_round() {
  if (!beats_in_rounds_) return;
  beat(std::chrono::steady_clock::now());
  if (!pump_->busy()) {  // the spell is over, or the pump stopped
    beats_in_rounds_ = false;
    arm_heartbeat();
  }
}

void SyncService::arm_heartbeat() {
  heartbeat_timer_.expires_at(next_beat_);
  heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) heartbeat();
  });
}

void SyncService::set_degraded(bool degraded) {
  if (degraded_.exchange(degraded, std::memory_order_relaxed) == degraded) return;
  asio::post(io_, [this] { beat_now(); });
}

void SyncService::beat(std::chrono::steady_clock::time_point now) {
  const bool up = link_->connected() && replicator_->peer_hello_seen();
  const bool source = replicator_->role() == Replicator::Role::Source;
  next_beat_ = now + kHeartbeat;
  if (up && source) {
    auto spoke = last_heartbeat_sent_;
    if (replicator_->peer_takes_flows_as_heartbeats()) {
      if (const auto flows = replicator_->last_flows_sent()) spoke = std::max(spoke, *flows);
    }
    if (now - spoke >= kHeartbeat) {
      wire::Frame f;
      f.mutable_heartbeat();
      link_->send(f);
      last_heartbeat_sent_ = now;
      ++heartbeats_sent_;
      spoke = now;
    }
    next_beat_ = spoke + kHeartbeat;
  }
  // Health both ways (health_beat.h).
  if (!up) {
    peer_degraded_.store(false, std::memory_order_relaxed);
    peer_holds_state_.store(true, std::memory_order_relaxed);
  } else if (const auto health = health_beat_.due(
                 now, link_->counters().connects,
                 {degraded_.load(std::memory_order_relaxed),
                  holds_state_.load(std::memory_order_relaxed)})) {
    wire::Frame f;
    f.mutable_health()->set_degraded(health->degraded);
    f.mutable_health()->set_holds_state(health->holds_state);
    link_->send(f);
  }
  // A Backup wakes for its Health's repeat only; while down, a connection's Hello wakes it.
  if (!source) next_beat_ = up ? health_beat_.next_repeat(now) : now + HealthBeat::kRepeat;
}

std::optional<std::chrono::steady_clock::time_point> SyncService::last_master_heartbeat() const {
  const int64_t ns = last_heartbeat_ns_.load(std::memory_order_relaxed);
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

void SyncService::publish() {
  Status s;
  s.connected = link_->connected() && replicator_->peer_hello_seen();
  s.role = to_string(replicator_->role());
  s.link_queue_bytes = link_->queued_bytes();
  s.unacked_bytes = replicator_->unacked_bytes();
  s.lag_ms = replicator_->lag().count();
  s.connects = link_->counters().connects;
  s.rejected_connections = link_->counters().rejected_connections;
  s.link_queue_overflows = link_->counters().queue_overflows;
  s.peer_silences = peer_silences_;
  s.counters = replicator_->counters();
  s.reconcile = replicator_->reconcile_counters();
  s.writer = writer_->counters();
  s.expect = expect_->counters();
  s.holds_peer_state = replicator_->holds_source_state();
  s.peer_vrrp_priority = replicator_->peer_vrrp_priority();
  s.heartbeats_sent = heartbeats_sent_;
  s.events_uncarried = pump_->uncarried();
  if (const auto b = pump_->backlog()) {
    s.event_backlog_bytes = b->queued_bytes;
    s.event_buffer_bytes = b->limit_bytes;
  }
  s.taken = std::chrono::steady_clock::now();
  std::lock_guard lock(status_mutex_);
  status_ = std::move(s);
}

SyncService::Status SyncService::status() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

}  // namespace fwha::sync
