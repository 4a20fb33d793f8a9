#include "daemon/sync_watch.h"

namespace fwha::daemon {

std::optional<SyncWatch::Alert> SyncWatch::update(Clock::time_point now, bool sync_connected,
                                                  bool peer_should_be_there) {
  if (sync_connected) {
    down_since_.reset();
    if (!alerted_) return std::nullopt;
    alerted_ = false;
    return Alert::SyncBack;
  }
  if (!down_since_) down_since_ = now;
  // A Backup whose Master is silent too: that is a failover, not a split (the election acts).
  if (!peer_should_be_there || alerted_ || now - *down_since_ < kHoldOff) return std::nullopt;
  alerted_ = true;
  return Alert::SyncDownPeerAlive;
}

}  // namespace fwha::daemon
