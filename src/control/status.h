// What `fwhactl status` shows: a snapshot the daemon fills, rendered as text for people and
// as JSON for scripts and the lab. Pure, so the rendering is tested without a daemon.
#pragma once

#include <cstdint>
#include <string>

#include <vector>

#include "sync/sync_service.h"
#include "track/next_hop_tracker.h"
#include "vrrp/vrrp_group.h"

namespace fwha::control {

struct StatusSnapshot {
  std::string node;
  std::string peer;
  std::string group_name;
  unsigned vrid = 0;
  std::string state;
  int64_t since_ms = 0;       // CLOCK_MONOTONIC ms at the last state change
  int64_t state_age_ms = 0;
  std::string last_reason;
  std::string preempt_hold;   // "delay", "state", "handover" or "" (vrrp_state_machine.h)
  bool adverts_seen = false;
  int64_t last_advert_age_ms = -1;
  bool conntrack_replication = true;
  sync::SyncService::Status sync;
  int64_t sync_status_age_ms = 0;
  vrrp::GroupCounters vrrp;
  std::vector<track::NextHopTracker::Target> next_hops;  // empty: none tracked
  bool degraded = false;
  bool peer_degraded = false;  // as the peer said on the sync link
};

std::string render_text(const StatusSnapshot& s);
std::string render_json(const StatusSnapshot& s);

}  // namespace fwha::control
