// Which received adverts the state machine may see. RFC 5798 7.1 decides what is a valid
// advert (vrrp_packet.h parses and checks it); DESIGN.md narrows that further: only the
// configured peer may speak for the group, and only with the priority it told us on the sync
// link. A pure function, so each refusal is unit-tested without a socket; VrrpGroup counts and
// logs the verdict.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "fwha/ip_address.h"
#include "vrrp/vrrp_packet.h"

namespace fwha::vrrp {

enum class Admission : uint8_t {
  Accepted,
  RejectedTtl,          // TTL / Hop Limit not 255: not from this link (7.1)
  RejectedSource,       // not the configured peer (or an IPv6 source that is not link-local)
  RejectedMalformed,    // failed a check of 7.1, or Max Adver Int 0
  RejectedPriority,     // the peer's address, but not the peer's priority: forged
  OtherVrid,            // another group on the same link: not ours, not an error
};

// What the group knows when an advert arrives on one of its interfaces.
struct AdmissionRules {
  uint8_t vrid = 0;
  IpAddress peer_address;                // configured for this interface
  std::span<const IpAddress> vips;       // every VIP of the group (to explain a NATed source)
  std::optional<uint8_t> peer_priority;  // as the peer told us on the sync link, if it did
};

struct AdmissionVerdict {
  Admission admission = Admission::Accepted;
  std::string reason;  // for the log, without the interface: "TTL 64, must be 255"
  bool error = false;  // log as an error rather than a warning (somebody must act)
};

AdmissionVerdict admit_advert(const ParsedAdvert& advert, const AdmissionRules& rules);

}  // namespace fwha::vrrp
