// Split brain in the making: the sync link is down while the peer's adverts still arrive.
// The election is right not to move (the peer is alive), but replication has stopped, so a
// failover now would lose every session opened since: the operator must hear about it. Pure
// (clock passed in) so the hold-off and the one-alert-per-episode rule are unit-tested.
#pragma once

#include <chrono>
#include <optional>

namespace fwha::daemon {

class SyncWatch {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Alert { SyncDownPeerAlive, SyncBack };

  // A reconnect after a peer restart takes well under this; longer is an outage of the link.
  static constexpr std::chrono::seconds kHoldOff{3};

  // Called about once a second. `peer_should_be_there`: we are Master (a Backup sends no
  // adverts, so the Master cannot tell a dead Backup from a cut link: either way no standby
  // holds our state), or we are Backup and the Master's adverts arrive. Returns an alert to
  // raise now, at most one per episode.
  std::optional<Alert> update(Clock::time_point now, bool sync_connected,
                              bool peer_should_be_there);

 private:
  std::optional<Clock::time_point> down_since_;
  bool alerted_ = false;
};

}  // namespace fwha::daemon
