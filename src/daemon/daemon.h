// fwhad's top level: one Asio event loop that owns the VRRP group, the sync link, the
// conntrack replication and the control socket, and ties the replication role to the VRRP
// state (Master replicates, Backup applies). No threads: a measurement has to show the need
// first (issue 3 measures the event path).
#pragma once

#include <memory>

#include "config/config.h"
#include "control/status.h"
#include "fwha/asio.h"

namespace fwha::sync {
class ConntrackReader;
class ConntrackWriter;
class EventPump;
class Replicator;
class SyncLink;
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

  config::Config config_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer stop_deadline_;
  std::unique_ptr<vip::AddressPort> addresses_;
  std::unique_ptr<sync::ConntrackWriter> writer_;
  std::unique_ptr<sync::ConntrackReader> reader_;
  std::unique_ptr<sync::SyncLink> link_;
  std::unique_ptr<sync::Replicator> replicator_;
  std::unique_ptr<sync::EventPump> pump_;
  std::unique_ptr<vrrp::VrrpGroup> group_;
  std::unique_ptr<control::ControlServer> control_;
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace fwha
