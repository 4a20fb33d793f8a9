// fwhad: the fwha daemon. Parses the command line, loads and validates the config, runs.
#include <CLI/CLI.hpp>
#include <iostream>

#include "config/config.h"
#include "daemon/daemon.h"
#include "util/log.h"

namespace {

constexpr const char* kDescription = R"(fwhad - high availability for a pair of Linux firewalls.

Runs on both nodes of the pair. Elects the Master with VRRPv3 (RFC 5798, RFC 9568) on the
interfaces that carry the virtual IPs (VIPs), with IPv4 or IPv6 adverts per interface; the
Master holds the VIPs and replicates its conntrack table (NAT bindings included) over the
sync link to the Backup, which writes every entry straight into its own kernel table, so a
failover keeps established sessions alive.

States: Initialize, Backup, Master, and Fault (an interface of the group has no carrier: a
Master hands over at once; back to Backup when every interface has carrier again). A
Master whose process was stopped or starved for three advert intervals steps down when it
runs again, since the peer has taken over meanwhile.

Handover: on a switchover (fwhactl switchover), a graceful stop or carrier loss, the Master
sends its last conntrack events, then asks the Backup over the sync link to take over; the
Backup does so once it has applied them (a round trip, no Skew_Time), and the old Master
drops its VIPs when the new one speaks. If the Backup cannot, the Master stays (switchover)
or leaves with a priority 0 advert (stop, Fault), as RFC 5798 says.

Two Masters at once: the one whose table does not hold the group's state (it restarted and
has not finished its first sync) gives way whatever the priorities; otherwise the RFC 5798
tie-break decides. Optional: group.virtual_mac puts the VIPs on a macvlan vmac<vrid>-<n>
with MAC 00:00:5e:00:01:<vrid>, up on the Master only (neighbours need no ARP update);
group.track_next_hops pings routers beyond the interfaces, and a Master that loses one
hands the group over unless the peer lost it too.

Own traffic: VRRP and the sync link bypass conntrack through the nftables table inet fwha
(created at start, owned by fwhad: the kernel removes it when fwhad stops or dies), so a
full conntrack table cannot silence the election. Rulesets see these packets as `ct state
untracked`: accept them by protocol and address, not by ct state. Off with
node.notrack_own_traffic = false.

Logs go to stderr and, from notice level on, to syslog (facility daemon).
SIGTERM/SIGINT: graceful stop with a handover (above).
Status: fwhactl status [--json]. Switchover: fwhactl switchover (on the Master).

Exit codes: 0 stopped cleanly, 1 start-up failed (socket, interface), 2 bad configuration.)";

constexpr const char* kFooter = R"(
Configuration (TOML; every key is explained in fwha.conf.example, docs/running.md):
  [node]   name, control_socket, realtime_priority, election_cpu, notrack_own_traffic
  [peer]   name
  [sync]   local_address, peer_address, port, conntrack, reconcile_interval_s,
           event_buffer_kib, event_coalesce_us, event_hold_entries
  [group]  name, vrid, priority, advert_interval_cs, preempt, preempt_delay_s,
           virtual_mac, track_next_hops, track_interval_ms, track_misses
  [[group.interface]]  name, peer_address, vips = ["ADDR/LEN", ...]
           (peer_address IPv4: IPv4 adverts; IPv6 link-local fe80::...: IPv6 adverts)
Unknown keys are errors: `fwhad --check-config -c FILE` shows file:line: key: problem.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "fwhad"};
  app.footer(kFooter);
  std::string config_path = fwha::config::kDefaultPath;
  bool check_only = false;
  bool verbose = false;
  bool no_syslog = false;
  app.add_option("-c,--config", config_path, "configuration file (TOML)")
      ->capture_default_str();
  app.add_flag("--check-config", check_only,
               "only validate the configuration file, print what is wrong, exit 0 or 2");
  app.add_flag("-v,--verbose", verbose, "debug logging");
  app.add_flag("--no-syslog", no_syslog, "log to stderr only");
  app.set_version_flag("--version", "fwhad 0.1.0");
  CLI11_PARSE(app, argc, argv);

  auto loaded = fwha::config::load(config_path);
  if (auto* err = std::get_if<fwha::config::Error>(&loaded)) {
    std::cerr << "fwhad: invalid configuration: " << err->to_string() << "\n";
    return 2;
  }
  auto& config = std::get<fwha::config::Config>(loaded);
  if (check_only) {
    std::cout << config_path << ": OK (node " << config.node_name << ", group "
              << config.group.name << ", " << config.group.interfaces.size()
              << " interface(s))\n";
    return 0;
  }
  fwha::log::init(config.node_name, !no_syslog);
  if (verbose) fwha::log::set_min_level(fwha::log::Level::Debug);
  fwha::Daemon daemon(std::move(config));
  return daemon.run();
}
