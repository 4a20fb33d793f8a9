#include "daemon/daemon.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

#include "control/control_server.h"
#include "nft/conntrack_exemption.h"
#include "sync/sync_service.h"
#include "track/next_hop_monitor.h"
#include "util/log.h"
#include "util/realtime.h"
#include "vip/address_port.h"
#include "vrrp/vrrp_group.h"

namespace fwha {

namespace {

// How long a handover (switchover, graceful stop) waits for the peer to take over. It answers
// within a round trip unless a repair answer is still going out to it (the barrier waits for
// that: a peer missing entries must not become Master).
constexpr auto kHandoverDeadline = std::chrono::milliseconds(500);

// A takeover after a lost Master waits this long at most for the sync thread to apply what the
// peer sent and we have not read yet: each ms is a ms of outage for every session, each entry
// left unread is a session that breaks.
constexpr auto kSettleBudget = std::chrono::milliseconds(100);
// A rejoining node whose bulk sync received nothing new for this long raises an alert.
constexpr auto kRejoinStallAlert = std::chrono::seconds(10);

const char* to_string(Daemon::HandoverOutcome o) {
  switch (o) {
    case Daemon::HandoverOutcome::TookOver:
      return "took over";
    case Daemon::HandoverOutcome::Refused:
      return "refused (it is in Fault or not yet running)";
    case Daemon::HandoverOutcome::Unreachable:
      return "unreachable (sync link down)";
    case Daemon::HandoverOutcome::TimedOut:
      return "did not answer within 500 ms (still catching up with our table?)";
  }
  return "unknown";
}

int64_t monotonic_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// The node's own addresses (VIPs excluded): flows to or from them are the node's own traffic
// (sync link, management) and are not replicated.
sync::LocalFilter local_filter(const config::Config& c) {
  sync::LocalFilter f;
  std::vector<IpAddress> vips;
  for (const auto& i : c.group.interfaces)
    for (const auto& v : i.vips) vips.push_back(v.address);
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      std::optional<IpAddress> a;
      if (i->ifa_addr->sa_family == AF_INET) {
        a = IpAddress::from_bytes(
            reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr), 4);
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        a = IpAddress::from_bytes(
            reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr), 16);
      }
      if (a && std::find(vips.begin(), vips.end(), *a) == vips.end()) f.addresses.push_back(*a);
    }
    freeifaddrs(list);
  }
  f.addresses.push_back(c.sync.local_address);
  f.addresses.push_back(c.sync.peer_address);
  return f;
}

}  // namespace

Daemon::Daemon(config::Config config)
    : config_(std::move(config)),
      signals_(io_),
      watch_timer_(io_),
      handover_deadline_(io_),
      takeover_deadline_(io_) {}

Daemon::~Daemon() = default;  // members in reverse: notrack_ after every socket

bool Daemon::open() {
  std::error_code ec;
  if (config_.notrack_own_traffic) {
    const auto rules = nft::own_traffic_rules(config_.sync.local_address,
                                              config_.sync.peer_address, config_.sync.port);
    std::string what;
    notrack_ = nft::ConntrackExemption::install(rules, ec, what);
    if (!notrack_) {
      log::error("daemon", "cannot exempt VRRP and the sync link from conntrack: " + what +
                               ": " + ec.message() +
                               " (node.notrack_own_traffic = false runs without it)");
      return false;
    }
    std::string list;
    for (const auto& r : rules) list += (list.empty() ? "" : "; ") + nft::describe(r);
    log::info("daemon", std::string("own traffic bypasses conntrack (table inet ") +
                            nft::kTableName + "): " + list);
  }
  addresses_ = vip::make_kernel_address_port(ec);
  if (!addresses_) {
    log::error("daemon", "rtnetlink socket: " + ec.message());
    return false;
  }
  group_ = std::make_unique<vrrp::VrrpGroup>(
      io_, config_.group, *addresses_,
      [this](vrrp::State from, vrrp::State to, vrrp::Reason reason) {
        on_role_change(static_cast<int>(from), static_cast<int>(to),
                       reason == vrrp::Reason::PeerHoldsState);
      });
  group_->set_preempt_waits_for_state(config_.sync.conntrack);
  if (config_.group.virtual_mac) {
    links_ = vip::make_kernel_link_port(ec);
    if (!links_) {
      log::error("daemon", "rtnetlink socket for the virtual MAC links: " + ec.message());
      return false;
    }
    group_->set_link_port(*links_);
  }
  // The Master speaks on the sync link every 5 ms at least (a heartbeat, or its flow frames
  // under load: sync_service.h): heard within 1.5 advert intervals (15 ms at least), the
  // Master is alive and only its adverts are late.
  group_->set_master_alive_elsewhere([this] {
    const auto last = sync_->last_master_heartbeat();
    const auto recent = std::max<std::chrono::microseconds>(
        std::chrono::milliseconds(15),
        std::chrono::microseconds(15000 * int64_t{config_.group.advert_interval_cs}));
    return last && std::chrono::steady_clock::now() - *last < recent;
  });
  if (config_.sync.conntrack) {
    group_->set_before_takeover([this](std::function<void()> proceed) { settle_then(proceed); });
    group_->set_state_knowledge([this] {
      return vrrp::VrrpGroup::StateKnowledge{sync_->holds_state(), sync_->peer_holds_state()};
    });
  }
  std::string what;
  if (auto gec = group_->open(what)) {
    log::error("daemon", what + ": " + gec.message());
    return false;
  }
  sync::SyncService::Options so;
  so.node_name = config_.node_name;
  so.peer_name = config_.peer_name;
  so.vrrp_priority = config_.group.priority;
  so.local_address = config_.sync.local_address;
  so.peer_address = config_.sync.peer_address;
  so.port = config_.sync.port;
  so.replicate = config_.sync.conntrack;
  so.reconcile_interval = std::chrono::seconds(config_.sync.reconcile_interval_s);
  so.event_buffer_bytes = size_t{config_.sync.event_buffer_kib} * 1024;
  so.event_coalesce = std::chrono::microseconds(config_.sync.event_coalesce_us);
  so.event_hold_entries = config_.sync.event_hold_entries;
  // The replication thread is real-time below the election thread, but only while it is
  // mostly idle (util/busy_governor.h): saturating a core at SCHED_RR it would starve
  // ksoftirqd, adverts included. When busy it runs at nice -10.
  so.realtime_priority = config_.realtime_priority > 10 ? config_.realtime_priority - 10 : 0;
  so.nice = config_.realtime_priority > 0 ? -10 : 0;
  // Apart from the election thread, which gets a CPU of its own (util/realtime.h).
  election_cpu_ =
      config_.realtime_priority > 0 ? rt::election_cpu(config_.election_cpu) : -1;
  if (config_.realtime_priority == 0 && config_.election_cpu >= 0) {
    log::warning("daemon", "node.election_cpu is not used: with realtime_priority = 0 no "
                           "thread is pinned");
  }
  so.avoid_cpu = election_cpu_;
  // The peer hands the group over: decided here, on the main loop, by the state machine.
  so.on_takeover_request = [this](std::function<void(bool)> answer) {
    boost::asio::post(io_, [this, answer = std::move(answer)] {
      // Accepted even when this node is degraded: a peer that leaves (switchover, stop,
      // Fault) goes anyway, and a degraded peer does not ask us when we are degraded too
      // (Health on the sync link).
      const bool took = !stopping_ && group_->handover_requested();
      log::notice("daemon", "peer " + config_.peer_name + " hands the group over: " +
                                (took ? std::string("Master now")
                                      : std::string("refused, this node is ") +
                                            vrrp::to_string(group_->state())));
      answer(took);
    });
  };
  so.on_synced = [this] {
    boost::asio::post(io_, [this] {
      if (std::string(group_->preempt_hold()) == "state") {
        log::notice("daemon", "rejoin: this node holds " + config_.peer_name +
                                  "'s state now (bulk sync complete); it may preempt");
      }
      rejoin_stall_alerted_ = false;
      group_->peer_state_complete();
    });
  };
  sync_ = std::make_unique<sync::SyncService>(so);
  sync_->set_filter(local_filter(config_));
  if (auto sec = sync_->start(what)) {
    log::error("daemon", what + ": " + sec.message());
    return false;
  }
  if (!config_.group.track_next_hops.empty()) {
    next_hops_ = std::make_unique<track::NextHopMonitor>(
        io_, config_.group.track_next_hops,
        std::chrono::milliseconds(config_.group.track_interval_ms), config_.group.track_misses,
        [this](bool degraded, bool changed) { on_next_hops(degraded, changed); });
    if (auto tec = next_hops_->open()) {
      log::error("daemon", "ICMP sockets for the tracked next-hops (group.track_next_hops): " +
                               tec.message());
      return false;
    }
  }
  control_ = std::make_unique<control::ControlServer>(
      io_, config_.control_socket,
      [this](const std::string& r, control::ControlServer::Reply reply) {
        handle_control(r, std::move(reply));
      });
  if (auto cec = control_->start()) {
    log::error("daemon", "control socket " + config_.control_socket + ": " + cec.message());
    return false;
  }
  return true;
}

int Daemon::run() {
  if (!open()) return 1;
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (ec) return;
    log::notice("daemon", std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") +
                              ": graceful stop");
    begin_stop();
  });
  log::notice("daemon", "fwhad started node=" + config_.node_name + " peer=" + config_.peer_name +
                            " group=" + config_.group.name + " priority=" +
                            std::to_string(config_.group.priority) + " conntrack_replication=" +
                            (config_.sync.conntrack ? "on" : "off"));
  rt::apply_or_warn(config_.realtime_priority, "election");
  rt::pin_or_warn(election_cpu_, true, "election");
  group_->start();
  if (next_hops_) next_hops_->start();
  watch_sync();
  io_.run();
  log::notice("daemon", "fwhad stopped");
  return exit_code_;
}

void Daemon::on_role_change(int from, int to, bool for_peer_state) {
  const bool master = static_cast<vrrp::State>(to) == vrrp::State::Master;
  if (static_cast<vrrp::State>(from) == vrrp::State::Master &&
      static_cast<vrrp::State>(to) == vrrp::State::Fault) {
    // Our priority-0 advert makes the peer take over after its Skew_Time; asking over the
    // sync link (after the last events) lets it take over within a round trip.
    sync_->hand_over([this](sync::SyncService::Handover h) {
      boost::asio::post(io_, [this, h] {
        log::info("daemon", std::string("handover on Fault: peer ") +
                                (h == sync::SyncService::Handover::TookOver ? "took over"
                                                                            : "did not take over"));
      });
    });
  }
  if (master) sync_->set_filter(local_filter(config_));  // addresses may have changed
  // Two Masters met and only the peer holds the group's state: our table is not it. Ask for
  // a round now. Otherwise it stays unknown until the periodic one (30 s): a failover
  // meanwhile breaks sessions, and a node waiting to preempt waits that long (lab
  // rejoin_frozen). Not after an ordinary preemption: the loser's table is the state then,
  // and the new Master's own round follows its promotion.
  sync_->set_master(master, !master && for_peer_state);
}

// A degraded Master asks its peer to take over, unless the peer says it is degraded too (a
// fault beyond both nodes: moving would gain nothing and cost a gap). After a refusal (the
// peer in Fault, say) it asks again only after kRetryAfterRefusal: each attempt holds our
// adverts for a round trip.
void Daemon::on_next_hops(bool degraded, bool changed) {
  constexpr auto kRetryAfterRefusal = std::chrono::seconds(5);
  sync_->set_degraded(degraded);
  if (changed) {
    degraded_stay_logged_ = false;
    degraded_handover_refused_at_.reset();
    if (degraded) {
      log::error("track", "tracked next-hop " + next_hops_->unreachable() + " unreachable (" +
                              std::to_string(config_.group.track_misses) +
                              " echo requests unanswered): this node is degraded");
    } else {
      log::notice("track", "tracked next-hops reachable again: this node is no longer degraded");
    }
  }
  if (!degraded || stopping_ || handing_over_ || group_->state() != vrrp::State::Master) return;
  const auto now = std::chrono::steady_clock::now();
  if (degraded_handover_refused_at_ && now - *degraded_handover_refused_at_ < kRetryAfterRefusal) {
    return;
  }
  const auto stay = [this](const std::string& why) {
    if (!degraded_stay_logged_) log::error("track", "degraded, but " + why + ": still Master");
    degraded_stay_logged_ = true;
  };
  if (!sync_->status().connected) {
    return stay("the sync link to " + config_.peer_name +
                " is down (the peer would not hold our state)");
  }
  if (sync_->peer_degraded()) {
    return stay(config_.peer_name + " is degraded too (its tracked next-hops fail as well)");
  }
  degraded_stay_logged_ = false;
  log::warning("track", "degraded Master: handing the group over to " + config_.peer_name);
  hand_over([this](HandoverOutcome o) {
    if (o == HandoverOutcome::TookOver) {
      log::notice("track", config_.peer_name + " took over from this degraded node");
      degraded_handover_refused_at_.reset();
      return;
    }
    if (!degraded_handover_refused_at_) {
      log::warning("track", "handover refused: peer " + std::string(to_string(o)) +
                                "; still Master, asking again in 5 s");
    }
    degraded_handover_refused_at_ = std::chrono::steady_clock::now();
  });
}

void Daemon::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  // A Master hands the group over before it goes: the peer takes it once it has applied every
  // entry we sent (and our VIPs go only when it is Master), so the gap is a round trip, not
  // Skew_Time. If it cannot, we leave with priority 0 as RFC 5798 says.
  if (group_->state() == vrrp::State::Master) {
    hand_over([this](HandoverOutcome o) {
      if (o == HandoverOutcome::TookOver) {
        log::info("daemon", "peer confirmed it holds our state and took over");
      } else {
        log::warning("daemon", std::string("handover at stop: peer ") + to_string(o) +
                                   "; leaving with priority 0");
      }
      finish_stop();
    });
    return;
  }
  finish_stop();
}

void Daemon::hand_over(std::function<void(HandoverOutcome)> done) {
  const uint64_t generation = ++handover_generation_;
  handing_over_ = true;
  group_->handover_started();
  auto finish = [this, generation, done = std::move(done)](HandoverOutcome o) {
    if (generation != handover_generation_ || !handing_over_) return;  // already decided
    handing_over_ = false;
    handover_deadline_.cancel();
    if (o == HandoverOutcome::TookOver) {
      group_->handover_confirmed();
    } else {
      group_->handover_aborted();
    }
    done(o);
  };
  auto shared = std::make_shared<decltype(finish)>(std::move(finish));
  handover_deadline_.expires_after(kHandoverDeadline);
  handover_deadline_.async_wait([shared](boost::system::error_code ec) {
    if (!ec) (*shared)(HandoverOutcome::TimedOut);
  });
  sync_->hand_over([this, shared](sync::SyncService::Handover h) {
    const auto o = h == sync::SyncService::Handover::TookOver  ? HandoverOutcome::TookOver
                   : h == sync::SyncService::Handover::Refused ? HandoverOutcome::Refused
                                                               : HandoverOutcome::Unreachable;
    boost::asio::post(io_, [shared, o] { (*shared)(o); });
  });
}

void Daemon::switchover(std::function<void(std::string)> reply) {
  const auto state = group_->state();
  if (stopping_) return reply("error: fwhad is stopping\n");
  if (handing_over_) return reply("error: a handover is already running\n");
  if (state != vrrp::State::Master) {
    return reply(std::string("error: this node is ") + vrrp::to_string(state) +
                 ", not Master: run `fwhactl switchover` on the Master (" + config_.peer_name +
                 "?)\n");
  }
  if (!sync_->status().connected) {
    return reply("error: the sync link to " + config_.peer_name +
                 " is down: the peer cannot take over (it would not hold our state); "
                 "still Master\n");
  }
  log::notice("daemon", "switchover requested: handing the group over to " + config_.peer_name);
  const auto started = std::chrono::steady_clock::now();
  hand_over([this, reply = std::move(reply), started](HandoverOutcome o) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    if (o == HandoverOutcome::TookOver) {
      log::notice("daemon", "switchover done: " + config_.peer_name + " is Master");
      std::string text = "switchover: " + config_.peer_name + " is Master (" +
                         std::to_string(ms) + " ms); this node is " +
                         vrrp::to_string(group_->state());
      if (config_.group.preempt) text += " and will not preempt until it is Master again";
      return reply(text + "\n");
    }
    log::warning("daemon", std::string("switchover failed: peer ") + to_string(o));
    reply("error: switchover failed: " + config_.peer_name + " " + to_string(o) +
          "; this node is still Master\n");
  });
}

// The Master is gone: first apply what it sent that we have not read (sync thread), then add
// the VIPs. Bounded: an outage is worse than a session lost.
void Daemon::settle_then(std::function<void()> proceed) {
  auto once = std::make_shared<std::function<void()>>(std::move(proceed));
  const auto started = std::chrono::steady_clock::now();
  auto go = [this, once, started](const char* outcome, bool complete) {
    if (!*once) return;
    auto p = std::move(*once);
    *once = nullptr;
    takeover_deadline_.cancel();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    const std::string waited = " (" + std::to_string(us) + " us)";
    if (complete) {
      log::info("daemon", std::string("takeover: replicated state applied") + waited);
    } else if (!sync_->peer_holds_state() && !sync_->last_master_heartbeat()) {
      // A cold start: the peer is connected and said it holds no state either, and it never
      // spoke as a Master (a Master speaks every 5 ms at least). No session can break:
      // there was none to copy. A peer that was Master says "holds none" if it took over
      // before its own first sync had ended, so its word alone is not enough.
      log::info("daemon", std::string("takeover at a cold start: the peer holds no replicated "
                                      "state either and was never Master; this node's table "
                                      "is the group's state from now on (") +
                              outcome + ")" + waited);
    } else {
      log::warning("daemon", std::string("takeover with an incomplete table: ") + outcome +
                                 waited + "; sessions whose entries had not arrived break");
    }
    p();
  };
  takeover_deadline_.expires_after(kSettleBudget + std::chrono::milliseconds(20));
  takeover_deadline_.async_wait([go](boost::system::error_code ec) {
    if (!ec) go("the sync thread did not answer in time", false);
  });
  sync_->settle_input(kSettleBudget, [this, go](bool holds) {
    boost::asio::post(io_, [go, holds] {
      go("the first sync from the peer had not finished, or a repair was running", holds);
    });
  });
}

// A node that started with preempt waits for the peer's state before it preempts; say so
// when that sync makes no progress.
void Daemon::watch_rejoin(std::chrono::steady_clock::time_point now, uint64_t received,
                          bool sync_connected) {
  if (std::string(group_->preempt_hold()) != "state") return;
  if (!rejoin_progress_at_ || received != rejoin_received_) {
    rejoin_progress_at_ = now;
    rejoin_received_ = received;
    return;
  }
  if (!rejoin_stall_alerted_ && now - *rejoin_progress_at_ >= kRejoinStallAlert) {
    rejoin_stall_alerted_ = true;
    log::error("daemon", "rejoin stalled: the bulk sync from " + config_.peer_name +
                             " received nothing for " +
                             std::to_string(kRejoinStallAlert.count()) + " s (" +
                             std::to_string(received) + " entries so far, sync link " +
                             (sync_connected ? "up" : "down") +
                             "); this node will not preempt until it completes");
  }
}

void Daemon::watch_sync() {
  const auto st = sync_->status();  // one snapshot per tick (a copy under the status mutex)
  if (st.peer_vrrp_priority != 0) {
    group_->set_peer_priority(static_cast<uint8_t>(st.peer_vrrp_priority));
  }
  if (config_.sync.conntrack) {
    const auto now = std::chrono::steady_clock::now();
    watch_rejoin(now, st.counters.entries_received, st.connected);
    const bool master = group_->state() == vrrp::State::Master;
    if (auto alert = sync_watch_.update(now, st.connected,
                                        master || peer_adverts_seen(now))) {
      if (*alert == daemon::SyncWatch::Alert::SyncDownPeerAlive && master) {
        log::error("daemon", "sync link to " + config_.peer_name +
                                 " down: no standby holds our state any more (the Backup is "
                                 "down or the link is cut); a failover now would lose the "
                                 "sessions opened since");
      } else if (*alert == daemon::SyncWatch::Alert::SyncDownPeerAlive) {
        log::error("daemon", "split brain risk: sync link to " + config_.peer_name +
                                 " down while its adverts still arrive; replication has "
                                 "stopped and a failover now would lose the sessions opened "
                                 "since (roles unchanged)");
      } else {
        log::notice("daemon", "sync link to " + config_.peer_name +
                                  " back: replication resumes (the peer is reconciled)");
      }
    }
  }
  watch_timer_.expires_after(std::chrono::seconds(1));
  watch_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) watch_sync();
  });
}

void Daemon::finish_stop() {
  if (finished_) return;
  finished_ = true;
  handover_deadline_.cancel();
  takeover_deadline_.cancel();
  watch_timer_.cancel();
  group_->shutdown();  // priority 0 and VIPs removed, if we were Master
  sync_->stop();
  control_->stop();
  signals_.cancel();
  io_.stop();
}

// "Seen" means alive: within Master_Down_Interval of the configured advert interval.
bool Daemon::peer_adverts_seen(std::chrono::steady_clock::time_point now) const {
  const auto last = group_->last_peer_advert();
  return last && now - *last <= std::chrono::milliseconds(4 * 10 * config_.group.advert_interval_cs);
}

control::StatusSnapshot Daemon::snapshot() const {
  control::StatusSnapshot s;
  const auto now = std::chrono::steady_clock::now();
  s.node = config_.node_name;
  s.peer = config_.peer_name;
  s.group_name = config_.group.name;
  s.vrid = config_.group.vrid;
  s.state = vrrp::to_string(group_->state());
  s.since_ms = monotonic_ms(group_->state_since());
  s.state_age_ms = monotonic_ms(now) - s.since_ms;
  s.last_reason = vrrp::to_string(group_->last_reason());
  s.preempt_hold = group_->preempt_hold();
  if (auto last = group_->last_peer_advert()) {
    s.last_advert_age_ms = monotonic_ms(now) - monotonic_ms(*last);
  }
  s.adverts_seen = peer_adverts_seen(now);
  s.conntrack_replication = config_.sync.conntrack;
  s.sync = sync_->status();
  s.sync_status_age_ms = monotonic_ms(now) - monotonic_ms(s.sync.taken);
  s.vrrp = group_->counters();
  if (next_hops_) {
    s.next_hops = next_hops_->tracker().targets();
    s.degraded = next_hops_->degraded();
    s.peer_degraded = sync_->peer_degraded();
  }
  return s;
}

void Daemon::handle_control(const std::string& request,
                            std::function<void(std::string)> reply) {
  if (request == "status") return reply(control::render_text(snapshot()));
  if (request == "status --json") return reply(control::render_json(snapshot()));
  if (request == "switchover") return switchover(std::move(reply));
  std::string shown = request.substr(0, 64);
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  log::warning("control", "unknown control request '" + shown + "'");
  reply("error: unknown request '" + shown + "' (known: status, status --json, switchover)\n");
}

}  // namespace fwha
