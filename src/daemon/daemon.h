// fwhad's top level: the main Asio loop owns the VRRP group and the control socket; the
// sync service (sync link + conntrack replication) runs on a thread of its own so that dumps
// and bulk writes never delay adverts. The replication role follows the VRRP state (Master
// replicates, Backup applies).
#pragma once

#include <memory>

#include "config/config.h"
#include "control/status.h"
#include "daemon/sync_watch.h"
#include "fwha/asio.h"

namespace fwha::sync {
class SyncService;
}  // namespace fwha::sync
namespace fwha::vip {
class AddressPort;
}
namespace fwha::vrrp {
class VrrpGroup;
}
namespace fwha::control {
class ControlServer;
}

namespace fwha {

class Daemon {
 public:
  explicit Daemon(config::Config config);
  ~Daemon();

  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();

 private:
  bool open();
  void on_role_change(int from, int to);
  void begin_stop();
  void finish_stop();
  std::string handle_control(const std::string& request);
  control::StatusSnapshot snapshot() const;
  void watch_sync();  // once a second: the split-brain alert (sync_watch.h)
  bool peer_adverts_seen(std::chrono::steady_clock::time_point now) const;

  config::Config config_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer stop_deadline_;
  boost::asio::steady_timer watch_timer_;
  daemon::SyncWatch sync_watch_;
  std::unique_ptr<vip::AddressPort> addresses_;
  std::unique_ptr<sync::SyncService> sync_;
  std::unique_ptr<vrrp::VrrpGroup> group_;
  std::unique_ptr<control::ControlServer> control_;
  bool stopping_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
};

}  // namespace fwha
