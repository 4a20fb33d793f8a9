#include "nft/own_traffic.h"

namespace fwha::nft {

std::vector<NotrackRule> own_traffic_rules(const IpAddress& local, const IpAddress& peer,
                                           uint16_t port) {
  std::vector<NotrackRule> rules;
  for (const Hook hook : {Hook::Prerouting, Hook::Output}) {
    for (const IpAddress& group : {IpAddress::v4(kVrrpMulticastV4),
                                   IpAddress{.family = Family::V6, .bytes = kVrrpMulticastV6}}) {
      rules.push_back({.hook = hook, .l4proto = kIpProtoVrrp, .dst = group});
    }
    const bool in = hook == Hook::Prerouting;
    const IpAddress& src = in ? peer : local;
    const IpAddress& dst = in ? local : peer;
    // Either node may have connected: the well-known port is the destination on one node's
    // packets and the source on the other's.
    rules.push_back({.hook = hook, .l4proto = kIpProtoTcp, .src = src, .dst = dst,
                     .dport = port});
    rules.push_back({.hook = hook, .l4proto = kIpProtoTcp, .src = src, .dst = dst,
                     .sport = port});
  }
  return rules;
}

std::string describe(const NotrackRule& rule) {
  std::string s = rule.hook == Hook::Prerouting ? "prerouting" : "output";
  const char* ip = "ip";
  if (rule.src && rule.src->family == Family::V6) ip = "ip6";
  if (rule.dst && rule.dst->family == Family::V6) ip = "ip6";
  if (rule.src) s += std::string(" ") + ip + " saddr " + rule.src->to_string();
  if (rule.dst) s += std::string(" ") + ip + " daddr " + rule.dst->to_string();
  const bool tcp = rule.l4proto == kIpProtoTcp;
  if (!tcp || (!rule.sport && !rule.dport)) {
    s += " meta l4proto " + std::string(rule.l4proto == kIpProtoVrrp ? "vrrp"
                                                                     : std::to_string(rule.l4proto));
  }
  if (rule.sport) s += " tcp sport " + std::to_string(*rule.sport);
  if (rule.dport) s += " tcp dport " + std::to_string(*rule.dport);
  return s + " notrack";
}

}  // namespace fwha::nft
