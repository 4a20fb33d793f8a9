// Conversion between fwha's FlowEntry and libnetfilter_conntrack's nf_conntrack. Pure
// userspace (no socket), so it is unit-tested without a kernel.
//
// The NAT trap (KERNEL-FACTS.md): setting the reply tuple *and* SNAT/DNAT makes the kernel
// create the entry without NAT (IPS_SRC_NAT missing) while reporting success. For creation we
// therefore set only the original tuple, call NFCT_SOPT_SETUP_REPLY, then set the NAT
// attributes derived from the reply tuple.
#pragma once

#include <memory>

#include "fwha/flow.h"

struct nf_conntrack;

namespace fwha::sync {

struct NfConntrackDeleter {
  void operator()(nf_conntrack* ct) const;
};
using NfConntrackPtr = std::unique_ptr<nf_conntrack, NfConntrackDeleter>;

// nf_conntrack (from an event or a dump) -> FlowEntry. False when the entry cannot be carried
// (not IPv4/IPv6, or no original tuple).
bool from_nf_conntrack(const nf_conntrack* ct, FlowEntry& out);

// An object ready for IPCTNL_MSG_CT_NEW with NLM_F_CREATE: original tuple, reply set up by
// the library, NAT from the reply tuple, status (only the bits the kernel accepts on create),
// timeout, mark, zone, TCP state.
NfConntrackPtr to_nf_conntrack_for_create(const FlowEntry& e);

// An object for IPCTNL_MSG_CT_NEW without NLM_F_CREATE (update): original tuple and the
// attributes the kernel allows to change (status, timeout, mark, TCP state). No NAT.
NfConntrackPtr to_nf_conntrack_for_update(const FlowEntry& e);

// An object for IPCTNL_MSG_CT_DELETE: original tuple and zone.
NfConntrackPtr to_nf_conntrack_for_delete(const FlowEntry& e);

}  // namespace fwha::sync
