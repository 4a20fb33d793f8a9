// fwha.conf: the one configuration file (TOML). Parsed and validated completely before the
// daemon touches anything; every error names the file, the line, the key and what was
// expected, so an operator fixes it in one go.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fwha/ip_address.h"
#include "fwha/sync_defaults.h"

namespace fwha::config {

inline constexpr const char* kDefaultPath = "/etc/fwha/fwha.conf";
inline constexpr const char* kDefaultControlSocket = "/run/fwha/fwhad.sock";
inline constexpr uint16_t kDefaultAdvertIntervalCs = 1;
inline constexpr int kDefaultRealtimePriority = 50;

struct VipInterface {
  std::string name;            // kernel interface name
  IpAddress peer_address;      // the peer's address on this link: adverts only from it
  std::vector<IpPrefix> vips;  // moved with the group
};

struct Group {
  std::string name;
  uint8_t vrid = 0;                   // 1..255
  uint8_t priority = 100;             // 1..254
  // 1..4095 centiseconds (RFC 5798 5.2.7). 1 by default: a Backup takes over 3 intervals +
  // Skew_Time (~36 ms at priority 100) after the Master's last advert, within issue 4's
  // 50 ms crash gap; the RFC's 100 (1 s) would give ~3.6 s.
  uint16_t advert_interval_cs = kDefaultAdvertIntervalCs;
  bool preempt = false;
  uint32_t preempt_delay_s = 0;  // with preempt: wait this long after start before preempting
  // The VIPs live on a macvlan with the VRRP virtual MAC, up on the Master only, so neighbours
  // need no ARP/ND update at a failover (vip/virtual_mac.h). Packets to the VIPs' MAC then
  // arrive on that link (vmac<vrid>-<n>), which rulesets matching iifname must allow for.
  bool virtual_mac = false;
  // Tracked next-hops (track/next_hop_tracker.h): pinged every track_interval_ms; after
  // track_misses unanswered in a row this node is degraded, and a degraded Master hands the
  // group to its peer unless the peer is degraded too.
  std::vector<IpAddress> track_next_hops;
  uint32_t track_interval_ms = 1000;
  uint32_t track_misses = 3;
  std::vector<VipInterface> interfaces;
};

struct Sync {
  IpAddress local_address;
  IpAddress peer_address;
  uint16_t port = 7788;
  bool conntrack = true;  // replicate conntrack; off only to prove in the lab that it matters
  uint32_t reconcile_interval_s = 30;  // periodic digest comparison: bound on drift healing
  uint32_t event_buffer_kib = 64 * 1024;  // conntrack event socket receive buffer
  // Holding: gaps shorter than this make a stream. Window: while events keep coming,
  // the Master sends them every this many microseconds (0: per wake-up). Trades a bounded
  // lag for fewer wake-ups; see docs/performance.md.
  uint32_t event_coalesce_us = kDefaultEventCoalesceUs;
  // 2 or more: hold a stream's events until this many are pending, instead of the
  // window (sync/event_hold.h); 0 or 1: the window.
  uint32_t event_hold_entries = kDefaultEventHoldEntries;
};

struct Config {
  std::string node_name;
  std::string control_socket = kDefaultControlSocket;
  // SCHED_RR priority of the election thread (the replication thread stays at normal
  // priority); 0: normal scheduling. See docs/running.md.
  int realtime_priority = kDefaultRealtimePriority;
  // The CPU the election thread keeps to itself (with realtime_priority, on 2+ CPUs); -1: the
  // highest one fwhad may run on. Two nodes sharing one machine (the lab) give different ones.
  int election_cpu = -1;
  // VRRP and the sync link bypass conntrack (nft/own_traffic.h): a full conntrack table
  // cannot silence the election or keep the sync link from reconnecting.
  bool notrack_own_traffic = true;
  std::string peer_name;
  Sync sync;
  Group group;
};

struct Error {
  std::string file;
  int line = 0;          // 1-based; 0 when the whole file is concerned
  std::string key;       // dotted path, e.g. "group.vrid"
  std::string message;   // what was expected / what is wrong
  std::string to_string() const;
};

using Result = std::variant<Config, Error>;

Result parse(std::string_view text, std::string_view file_name);
Result load(const std::string& path);

}  // namespace fwha::config
