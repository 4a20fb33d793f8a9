#include "control/status.h"

#include <sstream>

namespace fwha::control {
namespace {

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

const char* yes_no(bool b) { return b ? "true" : "false"; }

}  // namespace

std::string render_text(const StatusSnapshot& s) {
  std::ostringstream o;
  o << "node " << s.node << ", peer " << s.peer << "\n";
  o << "group " << s.group_name << " (vrid " << s.vrid << "): " << s.state << " for "
    << s.state_age_ms / 1000.0 << " s, reason " << s.last_reason << ", " << s.vrrp.transitions
    << " transitions\n";
  o << "peer adverts: ";
  if (s.adverts_seen) {
    o << "last " << s.last_advert_age_ms << " ms ago\n";
  } else {
    o << "none seen\n";
  }
  o << "sync link: " << (s.sync_connected ? "up" : "down") << ", queue " << s.sync_queue_bytes
    << " bytes, conntrack replication "
    << (s.conntrack_replication ? "on (" + s.replication_role + ")" : std::string("off"))
    << "\n";
  o << "entries: sent " << s.sync.entries_sent << ", received " << s.sync.entries_received
    << ", applied " << s.sync.entries_applied << ", apply errors " << s.sync.apply_errors
    << ", filtered " << s.sync.entries_filtered << "\n";
  o << "bulk syncs: sent " << s.sync.bulk_syncs_sent << ", received " << s.sync.bulk_syncs_received
    << "; overruns " << s.sync.overruns << "\n";
  o << "rejected: frames " << s.sync.frames_rejected << ", flow changes "
    << s.sync.changes_rejected << ", connections " << s.sync_rejected_connections
    << ", adverts ttl " << s.vrrp.rejected_ttl << " / stranger " << s.vrrp.rejected_source
    << " / malformed " << s.vrrp.rejected_malformed << "\n";
  return o.str();
}

std::string render_json(const StatusSnapshot& s) {
  std::ostringstream o;
  o << "{\"node\": " << quote(s.node) << ", \"peer_name\": " << quote(s.peer)
    << ", \"group\": {\"name\": " << quote(s.group_name) << ", \"vrid\": " << s.vrid
    << ", \"state\": " << quote(s.state) << ", \"since_ms\": " << s.since_ms
    << ", \"state_age_ms\": " << s.state_age_ms << ", \"last_reason\": " << quote(s.last_reason)
    << ", \"transitions\": " << s.vrrp.transitions << "}"
    << ", \"peer\": {\"adverts_seen\": " << yes_no(s.adverts_seen)
    << ", \"last_advert_age_ms\": " << s.last_advert_age_ms << "}"
    << ", \"sync\": {\"connected\": " << yes_no(s.sync_connected)
    << ", \"conntrack\": " << yes_no(s.conntrack_replication)
    << ", \"role\": " << quote(s.replication_role) << ", \"queue_bytes\": " << s.sync_queue_bytes
    << ", \"entries_sent\": " << s.sync.entries_sent
    << ", \"entries_received\": " << s.sync.entries_received
    << ", \"entries_applied\": " << s.sync.entries_applied
    << ", \"entries_filtered\": " << s.sync.entries_filtered
    << ", \"apply_errors\": " << s.sync.apply_errors
    << ", \"frames_sent\": " << s.sync.frames_sent
    << ", \"frames_received\": " << s.sync.frames_received
    << ", \"frames_rejected\": " << s.sync.frames_rejected
    << ", \"changes_rejected\": " << s.sync.changes_rejected
    << ", \"unknown_frames\": " << s.sync.unknown_frames
    << ", \"sequence_gaps\": " << s.sync.sequence_gaps
    << ", \"bulk_syncs\": " << s.sync.bulk_syncs_sent + s.sync.bulk_syncs_received
    << ", \"bulk_syncs_sent\": " << s.sync.bulk_syncs_sent
    << ", \"bulk_syncs_received\": " << s.sync.bulk_syncs_received
    << ", \"overruns\": " << s.sync.overruns << ", \"connects\": " << s.sync_connects
    << ", \"rejected_connections\": " << s.sync_rejected_connections << "}"
    << ", \"vrrp\": {\"adverts_sent\": " << s.vrrp.adverts_sent
    << ", \"adverts_received\": " << s.vrrp.adverts_received
    << ", \"rejected_ttl\": " << s.vrrp.rejected_ttl
    << ", \"rejected_source\": " << s.vrrp.rejected_source
    << ", \"rejected_malformed\": " << s.vrrp.rejected_malformed
    << ", \"other_vrid\": " << s.vrrp.other_vrid << ", \"vip_errors\": " << s.vrrp.vip_errors
    << "}}\n";
  return o.str();
}

}  // namespace fwha::control
