// Conversion between fwha's FlowEntry and libnetfilter_conntrack's nf_conntrack, and the pure
// half of the batched writer (which request to send next, which entry a request touches,
// which answer belongs to which request). Userspace only (no socket), so it is unit-tested
// without a kernel; conntrack_netlink.cpp drives it.
//
// The NAT trap (KERNEL-FACTS.md): setting the reply tuple *and* SNAT/DNAT makes the kernel
// create the entry without NAT (IPS_SRC_NAT missing) while reporting success. For creation we
// therefore set only the original tuple, call NFCT_SOPT_SETUP_REPLY, then set the NAT
// attributes derived from the reply tuple.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "fwha/flow.h"

struct nf_conntrack;
struct nlmsghdr;

namespace fwha::sync {

struct NfConntrackDeleter {
  void operator()(nf_conntrack* ct) const;
};
using NfConntrackPtr = std::unique_ptr<nf_conntrack, NfConntrackDeleter>;

// nf_conntrack (from an event or a dump) -> FlowEntry. False when the entry cannot be carried
// (not IPv4/IPv6, or no original tuple).
bool from_nf_conntrack(const nf_conntrack* ct, FlowEntry& out);

// Optional attributes left out of a request because the standby's kernel refused them, so
// that the rest of the entry still lands (what 6.18 answers, nf_conntrack_netlink.c):
// - labels: only a netns with the connlabel extension in use (a rule using `ct label`) gives
//   entries room for them. Without it a create succeeds and silently drops the labels, and
//   an update answers ENOSPC (nf_connlabels_replace finds no label extension);
// - helper: a create naming a helper the kernel does not have answers EOPNOTSUPP, and so
//   does an upsert that reaches an existing entry without a helper.
enum CtOmit : uint8_t { kOmitNone = 0, kOmitLabels = 1, kOmitHelper = 2 };

// An object ready for IPCTNL_MSG_CT_NEW with NLM_F_CREATE: original tuple, reply set up by
// the library, NAT from the reply tuple, status (only the bits the kernel accepts on create),
// timeout, mark, zone, TCP state, labels, helper, NAT sequence adjustment.
NfConntrackPtr to_nf_conntrack_for_create(const FlowEntry& e, uint8_t omit = kOmitNone);

// An object for IPCTNL_MSG_CT_NEW without NLM_F_CREATE (update): original tuple and the
// attributes the kernel allows to change (status, timeout, mark, TCP state and the liberal
// flag, labels, sequence adjustment). No NAT, no helper.
NfConntrackPtr to_nf_conntrack_for_update(const FlowEntry& e, uint8_t omit = kOmitNone);

// An object for IPCTNL_MSG_CT_DELETE: original tuple and zone.
NfConntrackPtr to_nf_conntrack_for_delete(const FlowEntry& e);

// ---- Batching -------------------------------------------------------------------------------
//
// A change becomes one kernel request, or a short chain of them when the first guess about the
// table was wrong. What 6.18 answers (ctnetlink_new_conntrack, measured):
//   CREATE|EXCL on an existing entry          -> EEXIST
//   CREATE (no EXCL) on an existing entry     -> updates it; EOPNOTSUPP if NAT is attached
//   no flags (update) with NAT attributes     -> EOPNOTSUPP; on a missing entry -> ENOENT
//   status lacking ASSURED/SEEN_REPLY the entry has -> EBUSY;  DELETE of a missing entry -> ENOENT
//   CREATE of an entry whose reply tuple another entry holds (either direction) -> EEXIST, and
//   then an update by its original tuple -> ENOENT (a NAT binding the Master reused while this
//   table still has the old flow's copy, e.g. after a standby restart)
enum class CtRequest : uint8_t {
  CreateExcl,      // IPCTNL_MSG_CT_NEW, CREATE|EXCL, create object: the only way to set NAT
  Upsert,          // IPCTNL_MSG_CT_NEW, CREATE, create object: create or update, one message
  Update,          // IPCTNL_MSG_CT_NEW, no flags, update object (no NAT)
  UpdateNoStatus,  // as Update without CTA_STATUS: the local entry has bits ours lacks
  Delete,          // IPCTNL_MSG_CT_DELETE
  // IPCTNL_MSG_CT_DELETE by our original tuple, for a change that replaces_copy after its
  // create met EEXIST: the copy there is an earlier flow's (its NAT binding cannot be changed
  // by an update), so it goes and the create follows.
  DeleteCopy,
  // IPCTNL_MSG_CT_DELETE by *our reply tuple*: removes the entry that holds it, which cannot be
  // ours (an update by our original tuple just answered ENOENT). The Master's table has one
  // owner per tuple, so that entry is a stale copy.
  DeleteReplyHolder,
};

const char* to_string(CtRequest r);

// Requests one change may cost before its last answer is final (bounds a create/update
// ping-pong with a concurrent writer).
// The longest honest chains: update ENOENT, create EEXIST, update ENOENT, delete the reply
// holder, create; or (replaces_copy) create EEXIST, delete the copy, create EEXIST (our reply
// tuple held elsewhere too), delete the copy ENOENT, delete the reply holder, create.
// Plus one repeat without labels and one without the helper.
inline constexpr unsigned kMaxRequestsPerChange = 8;

// First request: non-NAT New/Update -> Upsert (one message either way); NAT New ->
// CreateExcl (the common case is a new flow); NAT Update -> Update; Destroy -> Delete.
CtRequest first_request(const FlowChange& c);

// After request number `sent` (1-based) of change `c`, `done`, was answered `err` (0 or a
// positive errno): the request to send next, or none and the change's final errno (0 = applied).
// `omit` is what the next request leaves out (CtOmit bits): a refusal of labels or helper
// repeats the same request without them, once each.
struct CtNext {
  std::optional<CtRequest> request;
  int error = 0;
  uint8_t omit = kOmitNone;
};
CtNext next_request(const FlowChange& c, CtRequest done, int err, unsigned sent,
                    uint8_t omit = kOmitNone);

// Changes grouped into rounds: round r holds, in batch order, the (r+1)-th change of every
// kernel entry (zone + original tuple) the batch touches. A round's changes address distinct
// entries, so their requests can share a send and be retried in any order; round r+1 starts
// once round r is settled, so the changes to one entry keep their order (New then Destroy ends
// absent). A batch without repeated entries is a single round, in order.
struct EntryRounds {
  std::vector<uint32_t> order;  // change indices, round after round
  std::vector<size_t> start;    // round r is order[start[r] .. start[r + 1])
  size_t count() const { return start.size() - 1; }
  std::span<const uint32_t> round(size_t r) const {
    return std::span<const uint32_t>(order).subspan(start[r], start[r + 1] - start[r]);
  }
};
EntryRounds same_entry_rounds(std::span<const FlowChange> changes);

// Upper bound of one request built from our objects (the largest, IPv6 TCP with SNAT, DNAT and
// a zone, is under 400 bytes; the unit test checks the margin). nfct_nlmsg_build does not
// check the space it writes to, so the writer keeps this much free before each message.
inline constexpr size_t kMaxCtRequestBytes = 2048;

// The answers to one send of requests numbered first_seq + slot. Only failed requests and the
// last one (sent with NLM_F_ACK) are answered; the kernel handles a send's messages in order,
// synchronously, so once the last slot's answer is in, every error of the send is.
class AckWindow {
 public:
  // `errors` has one element per slot, preset (0 = success unless an error arrives);
  // `last_slot` is the slot that carries NLM_F_ACK.
  AckWindow(uint32_t first_seq, std::span<int> errors, size_t last_slot)
      : first_seq_(first_seq), errors_(errors), last_slot_(last_slot) {}

  // Records the NLMSG_ERROR messages of one received datagram; anything else (answers to an
  // earlier, abandoned send) is skipped.
  void collect(const void* data, size_t len);
  bool complete() const { return complete_; }
  std::optional<size_t> slot_of(uint32_t seq) const;

 private:
  uint32_t first_seq_;
  std::span<int> errors_;
  size_t last_slot_;
  bool complete_ = false;
};

// A ctnetlink conntrack message (event or dump answer) -> FlowEntry; false when it is not
// one fwha can carry (unparseable, or a family other than IPv4 and IPv6).
bool parse_conntrack_message(const nlmsghdr* nlh, FlowEntry& out);
bool is_ctnetlink(const nlmsghdr* nlh);
// The conntrack events of one netlink datagram -> changes appended to `out`. Returns how many
// conntrack events it held that could not be carried: they are counted and shown, never
// dropped silently (a flow the standby lacks is a session lost at failover).
size_t parse_event_datagram(const char* data, int len, std::vector<FlowChange>& out);

// What libnetfilter_conntrack 1.0.9 cannot carry, read from / appended to the raw ctnetlink
// message (measured in the lab, tests/lab/coverage.py): the NAT "port" of protocols other
// than TCP and UDP (the ICMP echo id, SCTP/DCCP/UDP-Lite ports), the reply tuple's ICMP
// fields, and SCTP state and verification tags.
void parse_raw_attributes(const nlmsghdr* nlh, FlowEntry& e);
// Appends to a request built by nfct_nlmsg_build: `create` adds the NAT nests that
// to_nf_conntrack_for_create left out; both add SCTP protoinfo.
void append_raw_attributes(nlmsghdr* nlh, const FlowEntry& e, bool create);
// Appends CTA_TUPLE_REPLY (and CTA_ZONE) to an empty IPCTNL_MSG_CT_DELETE request: the kernel
// deletes whichever entry holds that tuple in either direction.
void append_reply_tuple(nlmsghdr* nlh, const FlowEntry& e);
// Appends a nest `which` holding CTA_TUPLE_IP and CTA_TUPLE_PROTO for `t` (also used for the
// tuples of expectations, expect_convert.cpp).
void put_ct_tuple(nlmsghdr* nlh, uint16_t which, const FlowTuple& t);
// True when the library sends the NAT port itself (TCP, UDP).
bool library_sends_nat_port(uint8_t l4proto);

}  // namespace fwha::sync
