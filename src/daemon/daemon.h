// fwhad's top level: the main Asio loop owns the VRRP group and the control socket; the
// sync service (sync link + conntrack replication) runs on a thread of its own so that dumps
// and bulk writes never delay adverts. The replication role follows the VRRP state (Master
// replicates, Backup applies).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "config/config.h"
#include "control/status.h"
#include "daemon/sync_watch.h"
#include "fwha/asio.h"

namespace fwha::sync {
class SyncService;
}  // namespace fwha::sync
namespace fwha::vip {
class AddressPort;
class LinkPort;
}
namespace fwha::vrrp {
class VrrpGroup;
}
namespace fwha::control {
class ControlServer;
}
namespace fwha::track {
class NextHopMonitor;
}
namespace fwha::nft {
class ConntrackExemption;
}

namespace fwha {

class Daemon {
 public:
  explicit Daemon(config::Config config);
  ~Daemon();

  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();

  enum class HandoverOutcome { TookOver, Refused, Unreachable, TimedOut };

 private:
  bool open();
  void on_role_change(int from, int to, bool for_peer_state);
  void begin_stop();
  void finish_stop();
  void handle_control(const std::string& request, std::function<void(std::string)> reply);
  // Hands the group over to the peer (switchover, graceful stop): vrrp_state_machine.h has
  // the protocol. `done` gets the outcome on the main loop.
  void hand_over(std::function<void(HandoverOutcome)> done);
  void switchover(std::function<void(std::string)> reply);
  control::StatusSnapshot snapshot() const;
  void watch_sync();  // once a second: the split-brain alert (sync_watch.h), rejoin progress
  void watch_rejoin(std::chrono::steady_clock::time_point now, uint64_t entries_received,
                    bool sync_connected);
  void settle_then(std::function<void()> proceed);
  // After each probe round of the tracked next-hops: alerts, and a degraded Master hands over.
  void on_next_hops(bool degraded, bool changed);
  bool peer_adverts_seen(std::chrono::steady_clock::time_point now) const;

  config::Config config_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer watch_timer_;
  boost::asio::steady_timer handover_deadline_;
  uint64_t handover_generation_ = 0;  // answers to an earlier handover are ignored
  bool handing_over_ = false;
  boost::asio::steady_timer takeover_deadline_;
  std::optional<std::chrono::steady_clock::time_point> rejoin_progress_at_;
  uint64_t rejoin_received_ = 0;
  bool rejoin_stall_alerted_ = false;
  daemon::SyncWatch sync_watch_;
  // Before every socket that sends or receives our own traffic, and destroyed after them:
  // a priority 0 advert at the stop still bypasses a full table.
  std::unique_ptr<nft::ConntrackExemption> notrack_;  // node.notrack_own_traffic only
  std::unique_ptr<vip::AddressPort> addresses_;
  std::unique_ptr<vip::LinkPort> links_;  // virtual_mac only; outlives group_'s links
  std::unique_ptr<sync::SyncService> sync_;
  std::unique_ptr<vrrp::VrrpGroup> group_;
  std::unique_ptr<control::ControlServer> control_;
  std::unique_ptr<track::NextHopMonitor> next_hops_;  // group.track_next_hops only
  std::optional<std::chrono::steady_clock::time_point> degraded_handover_refused_at_;
  bool degraded_stay_logged_ = false;  // "degraded, but still Master": once per episode
  int election_cpu_ = -1;  // util/realtime.h: the CPU the election thread keeps to itself
  bool stopping_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
};

}  // namespace fwha
