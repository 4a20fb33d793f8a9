#include "daemon/daemon.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

#include "control/control_server.h"
#include "sync/conntrack_port.h"
#include "sync/event_pump.h"
#include "sync/replicator.h"
#include "sync/sync_link.h"
#include "util/log.h"
#include "vip/address_port.h"
#include "vrrp/vrrp_group.h"

namespace fwha {

namespace {

// KERNEL-FACTS: each event costs ~1280 bytes of receive buffer; 64 MiB held 100k creates plus
// 100k destroys without a single ENOBUFS.
constexpr size_t kEventBufferBytes = 64 * 1024 * 1024;
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
    : config_(std::move(config)), signals_(io_), stop_deadline_(io_) {}

Daemon::~Daemon() = default;

bool Daemon::open() {
  std::error_code ec;
  addresses_ = vip::make_kernel_address_port(ec);
  if (!addresses_) {
    log::error("daemon", "rtnetlink socket: " + ec.message());
    return false;
  }
  writer_ = sync::make_netlink_writer(ec);
  if (!writer_) {
    log::error("daemon", "conntrack netlink socket (writer): " + ec.message());
    return false;
  }
  reader_ = sync::make_netlink_reader(ec);
  if (!reader_) {
    log::error("daemon", "conntrack netlink socket (reader): " + ec.message());
    return false;
  }
  sync::SyncLink::Handlers h;
  h.connected = [this] { replicator_->on_connected(); };
  h.disconnected = [this] { replicator_->on_disconnected(); };
  h.frame = [this](const sync::wire::Frame& f) { return replicator_->on_frame(f); };
  h.bad_frame = [this](const std::string& e) { replicator_->on_bad_frame(e); };
  link_ = std::make_unique<sync::SyncLink>(io_, config_.sync.local_address,
                                           config_.sync.peer_address, config_.sync.port, h);
  sync::Replicator::Options ro{config_.node_name, config_.peer_name};
  ro.replicate = config_.sync.conntrack;
  replicator_ = std::make_unique<sync::Replicator>(ro, *writer_, *reader_, *link_);
  pump_ = std::make_unique<sync::EventPump>(io_, *replicator_, kEventBufferBytes);
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
  if (auto lec = link_->start()) {
    log::error("daemon", "sync link on " + config_.sync.local_address.to_string() + ":" +
                             std::to_string(config_.sync.port) + ": " + lec.message());
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
  group_->start();
  io_.run();
  log::notice("daemon", "fwhad stopped");
  return exit_code_;
}

void Daemon::on_role_change(int /*from*/, int to) {
  if (static_cast<vrrp::State>(to) == vrrp::State::Master) {
    replicator_->set_filter(local_filter(config_));
    if (config_.sync.conntrack) {
      if (auto ec = pump_->start()) {
        log::error("sync", "cannot listen to conntrack events: " + ec.message() +
                               " (replication to the peer is stopped)");
      }
    }
    replicator_->set_role(sync::Replicator::Role::Source);
  } else {
    pump_->stop();
    replicator_->set_role(sync::Replicator::Role::Sink);
  }
}

void Daemon::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  // A Master hands over only after the Backup confirmed it holds every entry we sent:
  // read the last events, send them, then a barrier (bounded by kHandoverDeadline).
  if (group_->state() == vrrp::State::Master && config_.sync.conntrack) {
    pump_->drain_now();
    if (replicator_->request_barrier([this] { finish_stop(); })) {
      stop_deadline_.expires_after(kHandoverDeadline);
      stop_deadline_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        log::warning("daemon", "peer did not confirm the handover barrier in time");
        finish_stop();
      });
      return;
    }
  }
  finish_stop();
}

void Daemon::finish_stop() {
  stop_deadline_.cancel();
  group_->shutdown();  // priority 0 and VIPs removed, if we were Master
  pump_->stop();
  link_->stop();
  control_->stop();
  signals_.cancel();
  io_.stop();
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
    // "seen" means alive: within Master_Down_Interval of the configured advert interval.
    s.adverts_seen = s.last_advert_age_ms <= 4 * 10 * config_.group.advert_interval_cs;
  }
  s.conntrack_replication = config_.sync.conntrack;
  s.sync_connected = link_->connected() && replicator_->peer_hello_seen();
  s.sync_queue_bytes = link_->queued_bytes();
  s.replication_role = sync::to_string(replicator_->role());
  s.sync = replicator_->counters();
  s.sync_connects = link_->counters().connects;
  s.sync_rejected_connections = link_->counters().rejected_connections;
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
