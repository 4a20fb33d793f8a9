// FlowEntry <-> libnetfilter_conntrack's nf_conntrack. This is the only place that knows how
// the library stores a tuple (network byte order for addresses and ports, host order for
// status, timeout, mark and zone), so the netlink adapter and the unit test share one mapping.
//
// Why the create object looks the way it does (measured on 6.18, see KERNEL-FACTS.md):
// - Only the original tuple is set; NFCT_SOPT_SETUP_REPLY derives the un-NATed reply and the
//   kernel applies SNAT/DNAT on top of it. Copying the reported (NATed) reply tuple instead
//   makes the kernel see "nothing to translate": success, but no IPS_SRC_NAT, dead session.
// - Status carries only ASSURED and SEEN_REPLY: the kernel derives NAT bits from the NAT
//   attributes, the library always adds CONFIRMED, and EXPECTED/DYING etc. are refused.
// - TCP entries get IP_CT_TCP_FLAG_BE_LIBERAL in both directions, on create and on update: an
//   entry created over netlink has no window data, and kernels that do not pick the window up
//   from the first packets would otherwise drop them as out of window. An entry that exists
//   already may carry window data of its own, which an update cannot correct: from an earlier
//   connection on the same tuple (a client port reused while the old entry was still CLOSE
//   or TIME_WAIT: the kernel reopens that entry in place) or from when this node was Master.
//   Seen in the failover bench: such sessions died on the new Master with "SEQ is over upper
//   bound" (nf_conntrack_log_invalid).
//
// Batching (the pure half; conntrack_netlink.cpp sends): a change's requests form a chain
// decided by next_request() from the kernel's errno alone, so a lost guess costs one more
// message in the next pass, never a wrong table. Non-NAT changes use a single CREATE without
// EXCL (the kernel's own upsert); NAT changes cannot (an existing entry refuses NAT
// attributes with EOPNOTSUPP), so they guess from the kind: New creates, Update updates.
#include "sync/conntrack_convert.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_map>

namespace fwha::sync {

void NfConntrackDeleter::operator()(nf_conntrack* ct) const { nfct_destroy(ct); }

namespace {

// Bits the kernel lets userspace set on an entry (both create and update); everything else
// is either derived by the kernel (NAT, *_DONE, CONFIRMED) or refused with EBUSY.
constexpr uint32_t kSettableStatus = IPS_ASSURED | IPS_SEEN_REPLY;

bool has_ports(uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE ||
         proto == IPPROTO_SCTP || proto == IPPROTO_DCCP;
}

bool is_icmp(uint8_t proto) { return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6; }

// Reply type of an ICMP query, as the kernel's invmap has it. The library keeps the reply
// tuple's ICMP fields internally but exposes no attribute to read them, so we derive them.
uint8_t icmp_reply_type(uint8_t proto, uint8_t type) {
  struct Pair {
    uint8_t a, b;
  };
  static constexpr Pair kV4[] = {{8, 0}, {13, 14}, {15, 16}, {17, 18}};
  static constexpr Pair kV6[] = {{128, 129}, {139, 140}};
  for (const Pair& p :
       proto == IPPROTO_ICMP ? std::span<const Pair>(kV4) : std::span<const Pair>(kV6)) {
    if (type == p.a) return p.b;
    if (type == p.b) return p.a;
  }
  return type;
}

// Lifetime of an entry whose remaining lifetime we do not know: the kernel's sysctl defaults
// (6.18), TCP per state so a closing session does not linger for five days. Replied UDP gets
// 180 s (older kernels' stream timeout; 6.18 uses 120): erring long is safe, since the
// Master's Destroy removes the entry, while expiring before the Master would lose the flow.
uint32_t default_timeout(const FlowEntry& e) {
  switch (e.original.l4proto) {
    case IPPROTO_TCP:
      switch (e.tcp_state) {
        case TCP_CONNTRACK_SYN_RECV:
          return 60;
        case TCP_CONNTRACK_CLOSE_WAIT:
          return 60;
        case TCP_CONNTRACK_LAST_ACK:
          return 30;
        case TCP_CONNTRACK_CLOSE:
          return 10;
        case TCP_CONNTRACK_SYN_SENT:
        case TCP_CONNTRACK_FIN_WAIT:
        case TCP_CONNTRACK_TIME_WAIT:
        case TCP_CONNTRACK_SYN_SENT2:
          return 120;
        default:
          return 432000;  // ESTABLISHED, and NONE: never expire a live session early
      }
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      return (e.status & IPS_SEEN_REPLY) ? 180 : 30;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return 30;
    default:
      return 600;
  }
}

void set_address(nf_conntrack* ct, nf_conntrack_attr v4, nf_conntrack_attr v6, const IpAddress& a) {
  nfct_set_attr(ct, a.family == Family::V4 ? v4 : v6, a.bytes.data());
}

// Original tuple only; the library keeps per-attribute "set" bits, so nothing of the reply
// direction is touched here.
void set_original(nf_conntrack* ct, const FlowTuple& t) {
  nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, t.src.family == Family::V4 ? AF_INET : AF_INET6);
  set_address(ct, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, t.src);
  set_address(ct, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, t.dst);
  nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, t.l4proto);
  if (has_ports(t.l4proto)) {
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(t.src_port));
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(t.dst_port));
  } else if (is_icmp(t.l4proto)) {
    // Type after L3PROTO: the setter derives the reply type from the family.
    nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, t.icmp_type);
    nfct_set_attr_u8(ct, ATTR_ICMP_CODE, t.icmp_code);
    nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(t.icmp_id));
  }
}

// NAT from the reply tuple: SNAT rewrote the source to reply.dst, DNAT the destination to
// reply.src. The port is pinned for protocols with ports (the library sends it for TCP/UDP),
// so port-preserving and port-randomising SNAT both come out as on the Master.
void set_nat(nf_conntrack* ct, const FlowEntry& e) {
  // Other protocols get their whole NAT nest from append_raw_attributes(): the library would
  // send the address without the port (or ICMP id) and the kernel would pick a new one.
  if (!library_sends_nat_port(e.original.l4proto)) return;
  const bool ports = has_ports(e.original.l4proto);
  if (e.status & IPS_SRC_NAT) {
    set_address(ct, ATTR_SNAT_IPV4, ATTR_SNAT_IPV6, e.reply.dst);
    if (ports) nfct_set_attr_u16(ct, ATTR_SNAT_PORT, htons(e.reply.dst_port));
  }
  if (e.status & IPS_DST_NAT) {
    set_address(ct, ATTR_DNAT_IPV4, ATTR_DNAT_IPV6, e.reply.src);
    if (ports) nfct_set_attr_u16(ct, ATTR_DNAT_PORT, htons(e.reply.src_port));
  }
}

void set_common(nf_conntrack* ct, const FlowEntry& e) {
  nfct_set_attr_u32(ct, ATTR_TIMEOUT, e.timeout_s ? e.timeout_s : default_timeout(e));
  nfct_set_attr_u32(ct, ATTR_MARK, e.mark);
  // CTA_ZONE is refused (EOPNOTSUPP) by kernels without zone support: send it only when used.
  if (e.zone != 0) nfct_set_attr_u16(ct, ATTR_ZONE, e.zone);
  if (e.original.l4proto == IPPROTO_TCP && e.tcp_state != TCP_CONNTRACK_NONE)
    nfct_set_attr_u8(ct, ATTR_TCP_STATE, e.tcp_state);
}

// Labels, helper and sequence adjustment: optional attributes, each left out when the entry
// has none (an absent attribute leaves the kernel's value alone) or when `omit` says the
// standby's kernel refused it (see CtOmit).
void set_labels(nf_conntrack* ct, const FlowEntry& e) {
  if (!e.has_labels()) return;
  nfct_bitmask* bits = nfct_bitmask_new(127);  // 128 bits, CTA_LABELS of 16 bytes
  if (bits == nullptr) return;
  for (unsigned i = 0; i < 128; ++i) {
    if ((e.labels[i / 64] >> (i % 64)) & 1) nfct_bitmask_set_bit(bits, i);
  }
  nfct_set_attr(ct, ATTR_CONNLABELS, bits);  // the object owns it from now on
}

void set_seqadj(nf_conntrack* ct, const FlowEntry& e) {
  if (e.original.l4proto != IPPROTO_TCP || !e.has_seqadj()) return;
  // The kernel wants all three values of a direction (change_seq_adj: EINVAL otherwise).
  nfct_set_attr_u32(ct, ATTR_ORIG_NAT_SEQ_CORRECTION_POS, e.seqadj_original.correction_pos);
  nfct_set_attr_u32(ct, ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE, e.seqadj_original.offset_before);
  nfct_set_attr_u32(ct, ATTR_ORIG_NAT_SEQ_OFFSET_AFTER, e.seqadj_original.offset_after);
  nfct_set_attr_u32(ct, ATTR_REPL_NAT_SEQ_CORRECTION_POS, e.seqadj_reply.correction_pos);
  nfct_set_attr_u32(ct, ATTR_REPL_NAT_SEQ_OFFSET_BEFORE, e.seqadj_reply.offset_before);
  nfct_set_attr_u32(ct, ATTR_REPL_NAT_SEQ_OFFSET_AFTER, e.seqadj_reply.offset_after);
}

void set_optional(nf_conntrack* ct, const FlowEntry& e, uint8_t omit, bool create) {
  if (!(omit & kOmitLabels)) set_labels(ct, e);
  set_seqadj(ct, e);
  // Only on create: the kernel cannot attach a helper to an existing entry (EOPNOTSUPP) and
  // one it has cannot change, so an update has nothing to say about it.
  if (create && e.has_helper() && !(omit & kOmitHelper))
    nfct_set_attr(ct, ATTR_HELPER_NAME, e.helper.data());
}

void get_optional(const nf_conntrack* ct, FlowEntry& e) {
  if (nfct_attr_is_set(ct, ATTR_CONNLABELS)) {
    const auto* bits = static_cast<const nfct_bitmask*>(nfct_get_attr(ct, ATTR_CONNLABELS));
    const unsigned max = std::min(nfct_bitmask_maxbit(bits), 127u);
    for (unsigned i = 0; i <= max; ++i) {
      if (nfct_bitmask_test_bit(bits, i)) e.labels[i / 64] |= uint64_t{1} << (i % 64);
    }
  }
  if (nfct_attr_is_set(ct, ATTR_HELPER_NAME)) {
    const auto* name = static_cast<const char*>(nfct_get_attr(ct, ATTR_HELPER_NAME));
    std::strncpy(e.helper.data(), name, kHelperNameMax);
    e.helper[kHelperNameMax] = '\0';
  }
  if (e.original.l4proto != IPPROTO_TCP) return;
  if (nfct_attr_is_set(ct, ATTR_ORIG_NAT_SEQ_CORRECTION_POS)) {
    e.seqadj_original = {nfct_get_attr_u32(ct, ATTR_ORIG_NAT_SEQ_CORRECTION_POS),
                         nfct_get_attr_u32(ct, ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE),
                         nfct_get_attr_u32(ct, ATTR_ORIG_NAT_SEQ_OFFSET_AFTER)};
  }
  if (nfct_attr_is_set(ct, ATTR_REPL_NAT_SEQ_CORRECTION_POS)) {
    e.seqadj_reply = {nfct_get_attr_u32(ct, ATTR_REPL_NAT_SEQ_CORRECTION_POS),
                      nfct_get_attr_u32(ct, ATTR_REPL_NAT_SEQ_OFFSET_BEFORE),
                      nfct_get_attr_u32(ct, ATTR_REPL_NAT_SEQ_OFFSET_AFTER)};
  }
}

void set_tcp_liberal(nf_conntrack* ct) {
  nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, IP_CT_TCP_FLAG_BE_LIBERAL);
  nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, IP_CT_TCP_FLAG_BE_LIBERAL);
  nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, IP_CT_TCP_FLAG_BE_LIBERAL);
  nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, IP_CT_TCP_FLAG_BE_LIBERAL);
}

bool get_address(const nf_conntrack* ct, bool v4, nf_conntrack_attr a4, nf_conntrack_attr a6,
                 IpAddress& out) {
  const nf_conntrack_attr attr = v4 ? a4 : a6;
  if (!nfct_attr_is_set(ct, attr)) return false;
  auto a = IpAddress::from_bytes(static_cast<const uint8_t*>(nfct_get_attr(ct, attr)), v4 ? 4 : 16);
  if (!a) return false;
  out = *a;
  return true;
}

bool get_original(const nf_conntrack* ct, bool v4, FlowTuple& t) {
  if (!get_address(ct, v4, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, t.src) ||
      !get_address(ct, v4, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, t.dst) ||
      !nfct_attr_is_set(ct, ATTR_ORIG_L4PROTO))
    return false;
  t.l4proto = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
  if (has_ports(t.l4proto)) {
    t.src_port = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC));
    t.dst_port = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
  } else if (is_icmp(t.l4proto)) {
    t.icmp_type = nfct_get_attr_u8(ct, ATTR_ICMP_TYPE);
    t.icmp_code = nfct_get_attr_u8(ct, ATTR_ICMP_CODE);
    t.icmp_id = ntohs(nfct_get_attr_u16(ct, ATTR_ICMP_ID));
  }
  return true;
}

// The reply tuple as the kernel reports it (NAT included). Events and dumps always carry it;
// should it be missing, the un-NATed inverse of the original is the only honest guess.
void get_reply(const nf_conntrack* ct, bool v4, const FlowTuple& orig, FlowTuple& t) {
  t.l4proto = nfct_attr_is_set(ct, ATTR_REPL_L4PROTO) ? nfct_get_attr_u8(ct, ATTR_REPL_L4PROTO)
                                                      : orig.l4proto;
  if (!get_address(ct, v4, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, t.src)) t.src = orig.dst;
  if (!get_address(ct, v4, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, t.dst)) t.dst = orig.src;
  if (has_ports(t.l4proto)) {
    t.src_port = nfct_attr_is_set(ct, ATTR_REPL_PORT_SRC)
                     ? ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC))
                     : orig.dst_port;
    t.dst_port = nfct_attr_is_set(ct, ATTR_REPL_PORT_DST)
                     ? ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST))
                     : orig.src_port;
  } else if (is_icmp(t.l4proto)) {
    // Not readable through the library (see icmp_reply_type); the id is kept unless NAT had
    // to remap it, which the library could not replay anyway (it sends no ICMP id range).
    t.icmp_type = icmp_reply_type(t.l4proto, orig.icmp_type);
    t.icmp_code = orig.icmp_code;
    t.icmp_id = orig.icmp_id;
  }
}

// The object every builder starts from: the original tuple only.
NfConntrackPtr new_with_original(const FlowEntry& e) {
  NfConntrackPtr ct(nfct_new());
  if (!ct) return ct;
  set_original(ct.get(), e.original);
  return ct;
}

}  // namespace

bool from_nf_conntrack(const nf_conntrack* ct, FlowEntry& out) {
  if (!nfct_attr_is_set(ct, ATTR_ORIG_L3PROTO)) return false;
  const uint8_t l3 = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO);
  if (l3 != AF_INET && l3 != AF_INET6) return false;
  const bool v4 = l3 == AF_INET;

  FlowEntry e;
  if (!get_original(ct, v4, e.original)) return false;
  get_reply(ct, v4, e.original, e.reply);
  e.status = nfct_get_attr_u32(ct, ATTR_STATUS);  // 0 when absent
  e.timeout_s = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
  e.mark = nfct_get_attr_u32(ct, ATTR_MARK);
  e.zone = nfct_attr_is_set(ct, ATTR_ZONE) ? nfct_get_attr_u16(ct, ATTR_ZONE)
                                           : nfct_get_attr_u16(ct, ATTR_ORIG_ZONE);
  if (e.original.l4proto == IPPROTO_TCP) e.tcp_state = nfct_get_attr_u8(ct, ATTR_TCP_STATE);
  get_optional(ct, e);
  out = e;
  return true;
}

NfConntrackPtr to_nf_conntrack_for_create(const FlowEntry& e, uint8_t omit) {
  NfConntrackPtr ct = new_with_original(e);
  if (!ct) return ct;
  nfct_setobjopt(ct.get(), NFCT_SOPT_SETUP_REPLY);
  set_nat(ct.get(), e);
  nfct_set_attr_u32(ct.get(), ATTR_STATUS, e.status & kSettableStatus);
  set_common(ct.get(), e);
  set_optional(ct.get(), e, omit, true);
  if (e.original.l4proto == IPPROTO_TCP) set_tcp_liberal(ct.get());
  return ct;
}

NfConntrackPtr to_nf_conntrack_for_update(const FlowEntry& e, uint8_t omit) {
  NfConntrackPtr ct = new_with_original(e);
  if (!ct) return ct;
  // Status bits can only be added; an update without any settable bit has nothing to say,
  // and sending it could only earn EBUSY (the kernel refuses to clear ASSURED/SEEN_REPLY).
  if (e.status & kSettableStatus)
    nfct_set_attr_u32(ct.get(), ATTR_STATUS, e.status & kSettableStatus);
  set_common(ct.get(), e);
  set_optional(ct.get(), e, omit, false);
  if (e.original.l4proto == IPPROTO_TCP) set_tcp_liberal(ct.get());
  return ct;
}

NfConntrackPtr to_nf_conntrack_for_delete(const FlowEntry& e) {
  NfConntrackPtr ct = new_with_original(e);
  if (!ct) return ct;
  if (e.zone != 0) nfct_set_attr_u16(ct.get(), ATTR_ZONE, e.zone);
  return ct;
}

// ---- Batching -------------------------------------------------------------------------------

namespace {

bool has_nat(const FlowEntry& e) { return e.is_snat() || e.is_dnat(); }

bool is_delete(CtRequest r) {
  return r == CtRequest::Delete || r == CtRequest::DeleteReplyHolder ||
         r == CtRequest::DeleteCopy;
}

// What to try after `done` failed with `err`; nullopt when `err` is the answer.
std::optional<CtRequest> retry_after(const FlowChange& c, CtRequest done, int err,
                                     unsigned sent) {
  const CtRequest create = has_nat(c.entry) ? CtRequest::CreateExcl : CtRequest::Upsert;
  switch (done) {
    case CtRequest::CreateExcl:
      // It exists: an earlier flow's copy that must go, or (a repair's snapshot) ours, whose
      // NAT stays as it is. (Or our reply tuple is held by another entry: the delete of the
      // copy then finds nothing.)
      if (err == EEXIST) return c.replaces_copy ? CtRequest::DeleteCopy : CtRequest::Update;
      break;
    case CtRequest::DeleteCopy:
      if (err == 0) return create;
      // Nothing under our original tuple: the EEXIST was our reply tuple, held by another entry.
      if (err == ENOENT) return CtRequest::DeleteReplyHolder;
      break;
    case CtRequest::Upsert:
      if (err == EBUSY) return CtRequest::UpdateNoStatus;  // keep the local ASSURED/SEEN_REPLY
      // An upsert updates an entry found by its original tuple, so a second EEXIST means our
      // reply tuple is held by another entry; the first may be a local packet's entry racing.
      if (err == EEXIST) return sent >= 2 ? CtRequest::DeleteReplyHolder : CtRequest::Upsert;
      break;
    case CtRequest::Update:
    case CtRequest::UpdateNoStatus:
      // ENOENT as the first answer: simply missing. After an earlier request it means the
      // create clashed on the reply tuple (or the entry vanished in between: the delete of the
      // holder then finds nothing, harmlessly).
      if (err == ENOENT) return sent >= 2 ? CtRequest::DeleteReplyHolder : create;
      if (err == EBUSY && done == CtRequest::Update) return CtRequest::UpdateNoStatus;
      break;
    case CtRequest::DeleteReplyHolder:
      if (err == 0 || err == ENOENT) return create;
      break;
    case CtRequest::Delete:
      break;
  }
  return std::nullopt;
}

// Zone + original tuple, packed: what the kernel looks an entry up by.
using EntryKey = std::array<uint8_t, 48>;

EntryKey entry_key(const FlowEntry& e) {
  EntryKey k{};
  const FlowTuple& t = e.original;
  uint8_t* p = k.data();
  auto put = [&p](const void* v, size_t n) {
    std::memcpy(p, v, n);
    p += n;
  };
  put(t.src.bytes.data(), t.src.size());  // V4 uses 4 bytes; the rest stays zero
  p = k.data() + 16;
  put(t.dst.bytes.data(), t.dst.size());
  p = k.data() + 32;
  const uint8_t small[] = {static_cast<uint8_t>(t.src.family),
                           static_cast<uint8_t>(t.dst.family), t.l4proto, t.icmp_type,
                           t.icmp_code};
  put(small, sizeof small);
  const uint16_t wide[] = {t.src_port, t.dst_port, t.icmp_id};
  put(wide, sizeof wide);
  put(&e.zone, sizeof e.zone);
  return k;
}

struct EntryKeyHash {
  size_t operator()(const EntryKey& k) const {
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
  }
};

}  // namespace

const char* to_string(CtRequest r) {
  switch (r) {
    case CtRequest::CreateExcl:
      return "create";
    case CtRequest::Upsert:
      return "upsert";
    case CtRequest::Update:
      return "update";
    case CtRequest::UpdateNoStatus:
      return "update-without-status";
    case CtRequest::Delete:
      return "delete";
    case CtRequest::DeleteReplyHolder:
      return "delete-reply-holder";
    case CtRequest::DeleteCopy:
      return "delete-copy";
  }
  return "?";
}

CtRequest first_request(const FlowChange& c) {
  switch (c.kind) {
    case FlowChangeKind::New:
      return has_nat(c.entry) ? CtRequest::CreateExcl : CtRequest::Upsert;
    case FlowChangeKind::Update:
      return has_nat(c.entry) ? CtRequest::Update : CtRequest::Upsert;
    case FlowChangeKind::Destroy:
      return CtRequest::Delete;
  }
  return CtRequest::Upsert;
}

CtNext next_request(const FlowChange& c, CtRequest done, int err, unsigned sent,
                    uint8_t omit) {
  // Removing the holder of our reply tuple only clears the way: the change still has to land.
  if (done != CtRequest::DeleteReplyHolder && done != CtRequest::DeleteCopy &&
      (err == 0 || (done == CtRequest::Delete && err == ENOENT)))
    return {};
  if (sent < kMaxRequestsPerChange) {
    const bool carries_labels = c.entry.has_labels() && !(omit & kOmitLabels) && !is_delete(done);
    if (err == ENOSPC && carries_labels) return {done, 0, uint8_t(omit | kOmitLabels)};
    const bool carries_helper = c.entry.has_helper() && !(omit & kOmitHelper) &&
                                (done == CtRequest::CreateExcl || done == CtRequest::Upsert);
    if (err == EOPNOTSUPP && carries_helper) return {done, 0, uint8_t(omit | kOmitHelper)};
  }
  std::optional<CtRequest> next = retry_after(c, done, err, sent);
  if (!next || sent >= kMaxRequestsPerChange) return {std::nullopt, err, omit};
  return {next, 0, omit};
}

EntryRounds same_entry_rounds(std::span<const FlowChange> changes) {
  const size_t n = changes.size();
  EntryRounds out;
  out.order.resize(n);
  std::vector<uint32_t> rank(n, 0);
  uint32_t max_rank = 0;
  if (n > 1) {
    std::unordered_map<EntryKey, uint32_t, EntryKeyHash> seen;
    seen.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      rank[i] = seen[entry_key(changes[i].entry)]++;
      max_rank = std::max(max_rank, rank[i]);
    }
  }
  // Counting sort by rank, stable, so each round keeps the batch order.
  out.start.assign(size_t{max_rank} + 2, 0);
  for (uint32_t r : rank) ++out.start[r + 1];
  for (size_t r = 1; r < out.start.size(); ++r) out.start[r] += out.start[r - 1];
  std::vector<size_t> next(out.start.begin(), out.start.end() - 1);
  for (size_t i = 0; i < n; ++i) out.order[next[rank[i]]++] = static_cast<uint32_t>(i);
  return out;
}

std::optional<size_t> AckWindow::slot_of(uint32_t seq) const {
  const uint32_t offset = seq - first_seq_;  // modulo 2^32, like the sequence counter
  if (offset >= errors_.size()) return std::nullopt;
  return offset;
}

void AckWindow::collect(const void* data, size_t len) {
  int left = static_cast<int>(len);
  for (auto* nlh = static_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, left);
       nlh = mnl_nlmsg_next(nlh, &left)) {
    if (nlh->nlmsg_type != NLMSG_ERROR) continue;
    std::optional<size_t> slot = slot_of(nlh->nlmsg_seq);
    if (!slot) continue;
    errors_[*slot] = nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))
                         ? EBADMSG
                         : -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
    if (*slot == last_slot_) complete_ = true;
  }
}

namespace {

// --- raw ctnetlink attributes ---------------------------------------------------------------

struct AttrTable {
  static constexpr int kMax = 32;
  std::array<const nlattr*, kMax + 1> at{};
};

int collect(const nlattr* a, void* data) {
  auto* t = static_cast<AttrTable*>(data);
  const int type = mnl_attr_get_type(a);
  if (type >= 0 && type <= AttrTable::kMax) t->at[static_cast<size_t>(type)] = a;
  return MNL_CB_OK;
}

bool nested(const nlattr* a, AttrTable& out) {
  return a != nullptr && mnl_attr_parse_nested(a, collect, &out) >= 0;
}

uint8_t u8_or(const nlattr* a, uint8_t fallback) {
  return a && mnl_attr_get_payload_len(a) >= 1 ? mnl_attr_get_u8(a) : fallback;
}

uint32_t be32_or_zero(const nlattr* a) {
  return a && mnl_attr_get_payload_len(a) >= 4 ? ntohl(mnl_attr_get_u32(a)) : 0;
}

void parse_reply_icmp(const AttrTable& top, FlowEntry& e) {
  AttrTable reply, proto;
  if (!nested(top.at[CTA_TUPLE_REPLY], reply) || !nested(reply.at[CTA_TUPLE_PROTO], proto)) return;
  const bool v6 = e.original.l4proto == IPPROTO_ICMPV6;
  const nlattr* id = proto.at[v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID];
  if (id && mnl_attr_get_payload_len(id) >= 2) e.reply.icmp_id = ntohs(mnl_attr_get_u16(id));
  e.reply.icmp_type = u8_or(proto.at[v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE],
                            e.reply.icmp_type);
  e.reply.icmp_code = u8_or(proto.at[v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE],
                            e.reply.icmp_code);
}

void parse_sctp(const AttrTable& top, FlowEntry& e) {
  AttrTable info, sctp;
  if (!nested(top.at[CTA_PROTOINFO], info) || !nested(info.at[CTA_PROTOINFO_SCTP], sctp)) return;
  e.sctp_state = u8_or(sctp.at[CTA_PROTOINFO_SCTP_STATE], 0);
  e.sctp_vtag_original = be32_or_zero(sctp.at[CTA_PROTOINFO_SCTP_VTAG_ORIGINAL]);
  e.sctp_vtag_reply = be32_or_zero(sctp.at[CTA_PROTOINFO_SCTP_VTAG_REPLY]);
}

// CTA_NAT_SRC/DST { MINIP, MAXIP, CTA_NAT_PROTO { PORT_MIN, PORT_MAX } }: a range of one.
// For ICMP the "port" is the echo id (the kernel's nf_nat range is a union).
void put_nat(nlmsghdr* nlh, uint16_t which, const IpAddress& addr, uint16_t port_host) {
  nlattr* nest = mnl_attr_nest_start(nlh, which);
  const bool v4 = addr.family == Family::V4;
  const auto len = static_cast<uint16_t>(addr.size());
  mnl_attr_put(nlh, v4 ? CTA_NAT_V4_MINIP : CTA_NAT_V6_MINIP, len, addr.bytes.data());
  mnl_attr_put(nlh, v4 ? CTA_NAT_V4_MAXIP : CTA_NAT_V6_MAXIP, len, addr.bytes.data());
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_NAT_PROTO);
  mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MIN, htons(port_host));
  mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MAX, htons(port_host));
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, nest);
}

void put_sctp(nlmsghdr* nlh, const FlowEntry& e) {
  nlattr* info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
  nlattr* sctp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_SCTP);
  mnl_attr_put_u8(nlh, CTA_PROTOINFO_SCTP_STATE, e.sctp_state);
  mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, htonl(e.sctp_vtag_original));
  mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_REPLY, htonl(e.sctp_vtag_reply));
  mnl_attr_nest_end(nlh, sctp);
  mnl_attr_nest_end(nlh, info);
}

// CTA_TUPLE_* { CTA_TUPLE_IP { SRC, DST }, CTA_TUPLE_PROTO { NUM, ports | ICMP id/type/code } }
void put_tuple(nlmsghdr* nlh, uint16_t which, const FlowTuple& t) {
  nlattr* tuple = mnl_attr_nest_start(nlh, which);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  const bool v4 = t.src.family == Family::V4;
  const auto len = static_cast<uint16_t>(t.src.size());
  mnl_attr_put(nlh, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, len, t.src.bytes.data());
  mnl_attr_put(nlh, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, len, t.dst.bytes.data());
  mnl_attr_nest_end(nlh, ip);
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t.l4proto);
  if (is_icmp(t.l4proto)) {
    const bool v6 = t.l4proto == IPPROTO_ICMPV6;
    mnl_attr_put_u16(nlh, v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID, htons(t.icmp_id));
    mnl_attr_put_u8(nlh, v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE, t.icmp_type);
    mnl_attr_put_u8(nlh, v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE, t.icmp_code);
  } else if (has_ports(t.l4proto)) {
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t.src_port));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t.dst_port));
  }
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, tuple);
}

}  // namespace

void put_ct_tuple(nlmsghdr* nlh, uint16_t which, const FlowTuple& t) { put_tuple(nlh, which, t); }

void append_reply_tuple(nlmsghdr* nlh, const FlowEntry& e) {
  put_tuple(nlh, CTA_TUPLE_REPLY, e.reply);
  if (e.zone != 0) mnl_attr_put_u16(nlh, CTA_ZONE, htons(e.zone));
}

bool library_sends_nat_port(uint8_t l4proto) {
  return l4proto == IPPROTO_TCP || l4proto == IPPROTO_UDP;
}

void parse_raw_attributes(const nlmsghdr* nlh, FlowEntry& e) {
  const uint8_t p = e.original.l4proto;
  if (!is_icmp(p) && p != IPPROTO_SCTP) return;
  AttrTable top;
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, &top) < 0) return;
  if (is_icmp(p)) parse_reply_icmp(top, e);
  if (p == IPPROTO_SCTP) parse_sctp(top, e);
}

void append_raw_attributes(nlmsghdr* nlh, const FlowEntry& e, bool create) {
  const uint8_t p = e.original.l4proto;
  if (create && !library_sends_nat_port(p)) {
    if (e.status & IPS_SRC_NAT) {
      put_nat(nlh, CTA_NAT_SRC, e.reply.dst, is_icmp(p) ? e.reply.icmp_id : e.reply.dst_port);
    }
    if (e.status & IPS_DST_NAT) {
      put_nat(nlh, CTA_NAT_DST, e.reply.src, is_icmp(p) ? e.reply.icmp_id : e.reply.src_port);
    }
  }
  if (p == IPPROTO_SCTP && e.sctp_state != 0) put_sctp(nlh, e);
}

bool is_ctnetlink(const nlmsghdr* nlh) { return (nlh->nlmsg_type >> 8) == NFNL_SUBSYS_CTNETLINK; }

bool parse_conntrack_message(const nlmsghdr* nlh, FlowEntry& out) {
  NfConntrackPtr ct(nfct_new());
  if (!ct || nfct_nlmsg_parse(nlh, ct.get()) < 0) return false;
  if (!from_nf_conntrack(ct.get(), out)) return false;
  parse_raw_attributes(nlh, out);
  return true;
}

size_t parse_event_datagram(const char* data, int len, std::vector<FlowChange>& out) {
  size_t uncarried = 0;
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    if (!is_ctnetlink(nlh)) continue;
    FlowChange c;
    switch (nlh->nlmsg_type & 0xff) {
      case IPCTNL_MSG_CT_NEW:
        c.kind = (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ? FlowChangeKind::New
                                                                  : FlowChangeKind::Update;
        // The kernel made this entry just now: a copy the peer holds is an earlier flow's.
        c.replaces_copy = c.kind == FlowChangeKind::New;
        break;
      case IPCTNL_MSG_CT_DELETE:
        c.kind = FlowChangeKind::Destroy;
        break;
      default:
        continue;
    }
    if (parse_conntrack_message(nlh, c.entry)) {
      out.push_back(c);
    } else {
      ++uncarried;
    }
  }
  return uncarried;
}

}  // namespace fwha::sync
