// Which of the node's own packets bypass conntrack (docs/design.md, "fwha's own traffic").
//
// VRRP adverts and the sync link pass through conntrack like any flow, so a full conntrack
// table (nf_conntrack_max reached: a SYN flood, a burst of replicated entries) drops them:
// a new Master's first advert needs an entry and its send fails with EPERM, the peer's
// adverts need one on the way in, and so does a sync link that reconnects. The election and
// the replication must not depend on room in the table they protect, so their packets are
// marked untracked (`notrack`) before conntrack sees them. This file says which packets;
// conntrack_exemption.h writes the rules into the kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fwha/ip_address.h"
#include "fwha/vrrp_numbers.h"

namespace fwha::nft {

enum class Hook { Prerouting, Output };  // packets received / sent by this node

// Matches packets of one transport protocol, optionally narrowed to addresses and ports.
struct NotrackRule {
  Hook hook = Hook::Prerouting;
  uint8_t l4proto = 0;
  std::optional<IpAddress> src;  // src and dst, when both set, are of one family
  std::optional<IpAddress> dst;
  std::optional<uint16_t> sport;
  std::optional<uint16_t> dport;
};

inline constexpr uint8_t kIpProtoTcp = 6;

// VRRP to its multicast groups, IPv4 and IPv6 (the only destinations fwhad sends to; from
// anyone: a rogue advert is refused by the election, not by conntrack), and the sync link's
// TCP connection between `local` and `peer` on `port`, in both directions and whichever node
// connected. Nothing else: an ICMP error or a forwarded flow keeps its conntrack state (and
// its NAT).
std::vector<NotrackRule> own_traffic_rules(const IpAddress& local, const IpAddress& peer,
                                           uint16_t port);

// The rule in nft's syntax, for logs and errors ("output ip saddr 203.0.113.1 ... notrack").
std::string describe(const NotrackRule& rule);

}  // namespace fwha::nft
