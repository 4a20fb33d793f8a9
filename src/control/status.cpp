#include "control/status.h"

#include <cstdio>
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

std::string causes_text(const sync::ReconcileCounters& r) {
  std::string out;
  for (const auto& [cause, n] : r.causes) {
    out += (out.empty() ? "" : ", ") + cause + " " + std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

std::string causes_json(const sync::ReconcileCounters& r) {
  std::string out = "{";
  for (const auto& [cause, n] : r.causes) {
    out += (out.size() > 1 ? ", " : "") + quote(cause) + ": " + std::to_string(n);
  }
  return out + "}";
}

}  // namespace

std::string render_text(const StatusSnapshot& s) {
  const auto& y = s.sync;
  const auto& c = y.counters;
  std::ostringstream o;
  o << "node " << s.node << ", peer " << s.peer << "\n";
  o << "group " << s.group_name << " (vrid " << s.vrid << "): " << s.state << " for "
    << s.state_age_ms / 1000.0 << " s, reason " << s.last_reason << ", " << s.vrrp.transitions
    << " transitions, " << s.vrrp.stalls << " stalls";
  if (!s.preempt_hold.empty()) o << ", preemption held (" << s.preempt_hold << ")";
  o << "\n";
  o << "peer adverts: ";
  if (s.adverts_seen) {
    o << "last " << s.last_advert_age_ms << " ms ago\n";
  } else {
    o << "none seen\n";
  }
  o << "sync link: " << (y.connected ? "up" : "down") << ", conntrack replication "
    << (s.conntrack_replication ? "on (" + y.role + ")" : std::string("off")) << "\n";
  // The lag is the age of the oldest frame the peer has not acknowledged: a source's figure.
  // A Backup's would always read 0 ms, which says nothing about how far behind it is.
  o << "replication lag: "
    << (y.role == "sink" ? std::string("measured on the Master")
                         : std::to_string(y.lag_ms) + " ms")
    << ", queue " << y.link_queue_bytes
    << " bytes, unacknowledged " << y.unacked_bytes << " bytes";
  if (y.event_buffer_bytes > 0) {
    o << ", conntrack events unread " << y.event_backlog_bytes << " of "
      << y.event_buffer_bytes << " bytes";
  }
  o << "\n";
  o << "entries: sent " << c.entries_sent << ", received " << c.entries_received << ", applied "
    << c.entries_applied << ", apply errors " << c.apply_errors << ", filtered "
    << c.entries_filtered << "\n";
  o << "resyncs (reconciliation rounds): " << y.reconcile.rounds_started << " started ("
    << causes_text(y.reconcile) << "), " << y.reconcile.rounds_completed << " completed, "
    << y.reconcile.entries_repaired << " entries repaired, " << y.reconcile.entries_removed
    << " stale removed; resumes " << c.resumes << ", overruns " << c.overruns
    << ", link resets: full send queue " << y.link_queue_overflows << ", silent peer "
    << y.peer_silences << "\n";
  o << "expectations: sent " << y.expect.sent << ", received " << y.expect.received
    << ", applied " << y.expect.applied << ", waiting for their master " << y.expect.waiting
    << ", apply errors " << y.expect.apply_errors << "\n";
  if (y.writer.labels_refused || y.writer.helpers_refused) {
    o << "written without what this kernel refused: labels " << y.writer.labels_refused
      << " entries, helper " << y.writer.helpers_refused << " entries\n";
  }
  if (!s.next_hops.empty()) {
    o << "tracked next-hops" << (s.degraded ? " (DEGRADED)" : "")
      << (s.peer_degraded ? " (peer degraded too)" : "") << ":";
    for (const auto& t : s.next_hops) {
      o << " " << t.address.to_string() << " " << (t.reachable ? "reachable" : "unreachable")
        << " (" << t.answers << "/" << t.probes << " answered)";
    }
    o << "\n";
  }
  o << "rejected: frames " << c.frames_rejected << ", flow changes " << c.changes_rejected
    << ", conntrack entries not carried: events " << y.events_uncarried << " / dumps "
    << y.reconcile.dump_uncarried
    << ", connections " << y.rejected_connections << ", adverts ttl " << s.vrrp.rejected_ttl
    << " / stranger " << s.vrrp.rejected_source << " / forged priority "
    << s.vrrp.rejected_priority << " / malformed " << s.vrrp.rejected_malformed
    << "; adverts not sent " << s.vrrp.advert_send_errors << "\n";
  return o.str();
}

std::string render_json(const StatusSnapshot& s) {
  const auto& y = s.sync;
  const auto& c = y.counters;
  const auto& r = y.reconcile;
  std::ostringstream o;
  o << "{\"node\": " << quote(s.node) << ", \"peer_name\": " << quote(s.peer)
    << ", \"group\": {\"name\": " << quote(s.group_name) << ", \"vrid\": " << s.vrid
    << ", \"state\": " << quote(s.state) << ", \"since_ms\": " << s.since_ms
    << ", \"state_age_ms\": " << s.state_age_ms << ", \"last_reason\": " << quote(s.last_reason)
    << ", \"transitions\": " << s.vrrp.transitions
    << ", \"preempt_hold\": " << quote(s.preempt_hold) << "}"
    << ", \"peer\": {\"adverts_seen\": " << yes_no(s.adverts_seen)
    << ", \"last_advert_age_ms\": " << s.last_advert_age_ms << "}"
    << ", \"sync\": {\"connected\": " << yes_no(y.connected)
    << ", \"conntrack\": " << yes_no(s.conntrack_replication) << ", \"role\": " << quote(y.role)
    << ", \"holds_peer_state\": " << yes_no(y.holds_peer_state)
    << ", \"status_age_ms\": " << s.sync_status_age_ms << ", \"lag_ms\": " << y.lag_ms
    << ", \"queue_bytes\": " << y.link_queue_bytes << ", \"unacked_bytes\": " << y.unacked_bytes
    << ", \"event_backlog_bytes\": " << y.event_backlog_bytes
    << ", \"event_buffer_bytes\": " << y.event_buffer_bytes
    << ", \"entries_sent\": " << c.entries_sent << ", \"entries_received\": " << c.entries_received
    << ", \"entries_applied\": " << c.entries_applied
    << ", \"entries_filtered\": " << c.entries_filtered << ", \"apply_errors\": " << c.apply_errors
    << ", \"frames_sent\": " << c.frames_sent << ", \"frames_received\": " << c.frames_received
    << ", \"frames_rejected\": " << c.frames_rejected
    << ", \"events_uncarried\": " << y.events_uncarried
    << ", \"dump_uncarried\": " << y.reconcile.dump_uncarried
    << ", \"changes_rejected\": " << c.changes_rejected
    << ", \"unknown_frames\": " << c.unknown_frames << ", \"sequence_gaps\": " << c.sequence_gaps
    << ", \"duplicates\": " << c.duplicates
    << ", \"flows_ignored_as_master\": " << c.flows_ignored_as_master
    << ", \"copies_replaced\": " << c.copies_replaced
    << ", \"changes_held_while_down\": " << c.changes_held_while_down
    << ", \"resumes\": " << c.resumes
    << ", \"frames_resent\": " << c.frames_resent << ", \"overruns\": " << c.overruns
    << ", \"unacked_overflows\": " << c.unacked_overflows << ", \"acks_sent\": " << c.acks_sent
    << ", \"heartbeats_sent\": " << y.heartbeats_sent
    << ", \"connects\": " << y.connects
    << ", \"rejected_connections\": " << y.rejected_connections
    << ", \"link_queue_overflows\": " << y.link_queue_overflows
    << ", \"peer_silences\": " << y.peer_silences
    << ", \"resyncs\": " << r.rounds_started << ", \"resync_causes\": " << causes_json(r)
    << ", \"last_resync_cause\": " << quote(r.last_cause)
    << ", \"rounds_completed\": " << r.rounds_completed
    << ", \"buckets_repaired\": " << r.buckets_repaired
    << ", \"entries_repaired\": " << r.entries_repaired
    << ", \"entries_removed\": " << r.entries_removed
    << ", \"buckets_left_in_flux\": " << r.buckets_left_in_flux
    << ", \"expiring_refreshed\": " << r.expiring_refreshed
    << ", \"labels_refused\": " << y.writer.labels_refused
    << ", \"helpers_refused\": " << y.writer.helpers_refused
    << ", \"expectations_sent\": " << y.expect.sent
    << ", \"expectations_received\": " << y.expect.received
    << ", \"expectations_applied\": " << y.expect.applied
    << ", \"expectations_rejected\": " << y.expect.rejected
    << ", \"expectations_apply_errors\": " << y.expect.apply_errors
    << ", \"expectations_waiting\": " << y.expect.waiting
    << ", \"expectations_expired_waiting\": " << y.expect.expired_waiting << "}"
    << ", \"vrrp\": {\"adverts_sent\": " << s.vrrp.adverts_sent
    << ", \"adverts_received\": " << s.vrrp.adverts_received
    << ", \"advert_send_errors\": " << s.vrrp.advert_send_errors
    << ", \"rejected_ttl\": " << s.vrrp.rejected_ttl
    << ", \"rejected_source\": " << s.vrrp.rejected_source
    << ", \"rejected_priority\": " << s.vrrp.rejected_priority
    << ", \"rejected_malformed\": " << s.vrrp.rejected_malformed
    << ", \"other_vrid\": " << s.vrrp.other_vrid << ", \"vip_errors\": " << s.vrrp.vip_errors
    << ", \"stalls\": " << s.vrrp.stalls
    << ", \"stalls_survived\": " << s.vrrp.stalls_survived
    << ", \"late_timer_graces\": " << s.vrrp.late_timer_graces
    << ", \"alive_graces\": " << s.vrrp.alive_graces << "}"
    << ", \"track\": {\"degraded\": " << yes_no(s.degraded)
    << ", \"peer_degraded\": " << yes_no(s.peer_degraded) << ", \"next_hops\": [";
  for (size_t i = 0; i < s.next_hops.size(); ++i) {
    const auto& t = s.next_hops[i];
    o << (i ? ", " : "") << "{\"address\": " << quote(t.address.to_string())
      << ", \"reachable\": " << yes_no(t.reachable) << ", \"misses\": " << t.misses
      << ", \"probes\": " << t.probes << ", \"answers\": " << t.answers << "}";
  }
  o << "]}}\n";
  return o.str();
}

}  // namespace fwha::control
