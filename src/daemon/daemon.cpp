#include "daemon/daemon.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

#include "control/control_server.h"
#include "sync/sync_service.h"
#include "util/log.h"
#include "util/realtime.h"
#include "vip/address_port.h"
#include "vrrp/vrrp_group.h"

namespace fwha {

namespace {

// How long a graceful stop waits for the Backup to confirm it holds our state.
constexpr auto kHandoverDeadline = std::chrono::milliseconds(500);

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
    : config_(std::move(config)), signals_(io_), stop_deadline_(io_), watch_timer_(io_) {}

Daemon::~Daemon() = default;

bool Daemon::open() {
  std::error_code ec;
  addresses_ = vip::make_kernel_address_port(ec);
  if (!addresses_) {
    log::error("daemon", "rtnetlink socket: " + ec.message());
    return false;
  }
  group_ = std::make_unique<vrrp::VrrpGroup>(
      io_, config_.group, *addresses_,
      [this](vrrp::State from, vrrp::State to, vrrp::Reason) {
        on_role_change(static_cast<int>(from), static_cast<int>(to));
      });
  std::string what;
  if (auto gec = group_->open(what)) {
    log::error("daemon", what + ": " + gec.message());
    return false;
  }
  sync::SyncService::Options so;
  so.node_name = config_.node_name;
  so.peer_name = config_.peer_name;
  so.local_address = config_.sync.local_address;
  so.peer_address = config_.sync.peer_address;
  so.port = config_.sync.port;
  so.replicate = config_.sync.conntrack;
  so.reconcile_interval = std::chrono::seconds(config_.sync.reconcile_interval_s);
  so.event_buffer_bytes = size_t{config_.sync.event_buffer_kib} * 1024;
  so.event_coalesce = std::chrono::microseconds(config_.sync.event_coalesce_us);
  // The replication thread stays at normal priority: at SCHED_RR, a bulk write or a burst of
  // 300k events/s kept a core busy with real-time work, which starves ksoftirqd, the thread
  // that delivers packets once softirq load is high, adverts included (measured: a spurious
  // takeover during the bench's top step). At 1 ms coalescing its lag is the same either way.
  so.realtime_priority = 0;
  // Still ahead of ordinary processes, so CPU contention does not become replication lag,
  // while ksoftirqd keeps a share under saturation.
  so.nice = config_.realtime_priority > 0 ? -10 : 0;
  sync_ = std::make_unique<sync::SyncService>(so);
  sync_->set_filter(local_filter(config_));
  if (auto sec = sync_->start(what)) {
    log::error("daemon", what + ": " + sec.message());
    return false;
  }
  control_ = std::make_unique<control::ControlServer>(
      io_, config_.control_socket, [this](const std::string& r) { return handle_control(r); });
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
  group_->start();
  watch_sync();
  io_.run();
  log::notice("daemon", "fwhad stopped");
  return exit_code_;
}

void Daemon::on_role_change(int /*from*/, int to) {
  const bool master = static_cast<vrrp::State>(to) == vrrp::State::Master;
  if (master) sync_->set_filter(local_filter(config_));  // addresses may have changed
  sync_->set_master(master);
}

void Daemon::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  // A Master hands over only after the Backup confirmed it holds every entry we sent:
  // the sync thread reads the last events, sends them, then a barrier; bounded by
  // kHandoverDeadline in case the peer is gone.
  if (group_->state() == vrrp::State::Master && config_.sync.conntrack) {
    stop_deadline_.expires_after(kHandoverDeadline);
    stop_deadline_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      log::warning("daemon", "peer did not confirm the handover barrier in time");
      finish_stop();
    });
    sync_->handover([this](bool confirmed) {
      boost::asio::post(io_, [this, confirmed] {
        if (confirmed) log::info("daemon", "peer confirmed it holds our state");
        finish_stop();
      });
    });
    return;
  }
  finish_stop();
}

void Daemon::watch_sync() {
  if (config_.sync.conntrack) {
    const auto now = std::chrono::steady_clock::now();
    const bool master = group_->state() == vrrp::State::Master;
    if (auto alert = sync_watch_.update(now, sync_->status().connected,
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
  stop_deadline_.cancel();
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
  if (auto last = group_->last_peer_advert()) {
    s.last_advert_age_ms = monotonic_ms(now) - monotonic_ms(*last);
  }
  s.adverts_seen = peer_adverts_seen(now);
  s.conntrack_replication = config_.sync.conntrack;
  s.sync = sync_->status();
  s.sync_status_age_ms = monotonic_ms(now) - monotonic_ms(s.sync.taken);
  s.vrrp = group_->counters();
  return s;
}

std::string Daemon::handle_control(const std::string& request) {
  if (request == "status") return control::render_text(snapshot());
  if (request == "status --json") return control::render_json(snapshot());
  std::string shown = request.substr(0, 64);
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  log::warning("control", "unknown control request '" + shown + "'");
  return "error: unknown request '" + shown + "' (known: status, status --json)\n";
}

}  // namespace fwha
