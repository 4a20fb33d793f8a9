#include "vrrp/advert_admission.h"

#include <algorithm>

namespace fwha::vrrp {

AdmissionVerdict admit_advert(const ParsedAdvert& p, const AdmissionRules& rules) {
  // Only refusals carry text: an accepted advert (every interval, every interface) builds none.
  const auto from = [&p] { return "from " + p.source.to_string(); };
  switch (p.error) {
    case ParseError::None:
      break;
    case ParseError::SourceNotLinkLocal:  // IPv6: cannot be the configured peer
      return {Admission::RejectedSource,
              from() + ": IPv6 adverts must come from a link-local address", false};
    case ParseError::BadTtl:
      return {Admission::RejectedTtl, from() + ": TTL " + std::to_string(p.ttl) + ", must be 255",
              false};
    case ParseError::Truncated:
    case ParseError::NotIpv4:
    case ParseError::NotVrrp:
    case ParseError::BadVersion:
    case ParseError::BadType:
    case ParseError::BadChecksum:
    case ParseError::BadAddressCount:
    case ParseError::NotIpv6:
      return {Admission::RejectedMalformed, from() + ": " + to_string(p.error), false};
  }
  if (p.advert.max_adver_interval_cs == 0) {
    // RFC 5798 does not forbid it, but a Backup would compute Master_Down_Interval 0 from it
    // and take over at once: two Masters. No sane peer sends it.
    return {Admission::RejectedMalformed, from() + ": Max Adver Int 0", false};
  }
  if (p.advert.vrid != rules.vrid) return {Admission::OtherVrid, {}, false};  // never logged
  const auto priority = [&p] { return " priority=" + std::to_string(p.advert.priority); };
  if (p.source != rules.peer_address) {
    if (std::find(rules.vips.begin(), rules.vips.end(), p.source) != rules.vips.end()) {
      // Seen in the lab: a ruleset with "oifname WAN snat to VIP" rewrites the firewall's own
      // multicast adverts too, the peer then hears a stranger and both nodes become Master.
      return {Admission::RejectedSource,
              "from VIP " + p.source.to_string() + priority() +
                  ": the peer's adverts are being source-NATed; exclude the firewall's own "
                  "traffic (VRRP, IP protocol 112) from SNAT",
              true};
    }
    return {Admission::RejectedSource,
            from() + priority() + ": not the configured peer " + rules.peer_address.to_string(),
            false};
  }
  if (rules.peer_priority && p.advert.priority != 0 &&
      p.advert.priority != *rules.peer_priority) {
    // TTL 255 and the peer's address, but not the priority the peer told us on the sync link:
    // someone on this link speaks for the peer (a priority-255 advert would take the group).
    // Priority 0 stays allowed: the peer's graceful stop.
    return {Admission::RejectedPriority,
            from() + priority() + ": the peer's priority is " +
                std::to_string(*rules.peer_priority) +
                " (told on the sync link); forged by another host on this link?",
            true};
  }
  return {Admission::Accepted, {}, false};
}

}  // namespace fwha::vrrp
