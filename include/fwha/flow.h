// A conntrack entry in fwha's own words, independent of libnetfilter_conntrack, so the
// replication logic and the wire format are tested without a kernel. The fields are those the
// kernel needs to recreate the entry on the peer, NAT binding included.
#pragma once

#include <array>
#include <cstdint>

#include "fwha/ip_address.h"

namespace fwha {

// One direction of a flow, as conntrack names it: the tuple of the packet that created the
// entry (original) or of the answer it expects (reply).
struct FlowTuple {
  IpAddress src;
  IpAddress dst;
  uint8_t l4proto = 0;      // IPPROTO_*
  uint16_t src_port = 0;    // TCP/UDP/SCTP/DCCP; host order
  uint16_t dst_port = 0;
  uint16_t icmp_id = 0;     // ICMP/ICMPv6 echo identifier
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;

  friend bool operator==(const FlowTuple&, const FlowTuple&) = default;
};

// IPS_* status bits (linux/netfilter/nf_conntrack_common.h) that fwha reads; repeated here so
// code outside the adapter needs no kernel header.
namespace flow_status {
inline constexpr uint32_t kExpected = 1u << 0;
inline constexpr uint32_t kSeenReply = 1u << 1;
inline constexpr uint32_t kAssured = 1u << 2;
inline constexpr uint32_t kConfirmed = 1u << 3;
inline constexpr uint32_t kSrcNat = 1u << 4;
inline constexpr uint32_t kDstNat = 1u << 5;
inline constexpr uint32_t kSeqAdjust = 1u << 6;
inline constexpr uint32_t kSrcNatDone = 1u << 7;
inline constexpr uint32_t kDstNatDone = 1u << 8;
}  // namespace flow_status

// NAT sequence adjustment of one direction (struct nf_ct_seqadj): a helper that rewrote a
// payload to another length (FTP PORT to the WAN VIP) shifts every later TCP sequence number.
struct SeqAdj {
  uint32_t correction_pos = 0;
  uint32_t offset_before = 0;  // two's complement, as the kernel stores it
  uint32_t offset_after = 0;
  bool empty() const { return correction_pos == 0 && offset_before == 0 && offset_after == 0; }
  friend bool operator==(const SeqAdj&, const SeqAdj&) = default;
};

// A conntrack helper's name (NF_CT_HELPER_NAME_LEN is 16 with the NUL); fixed size so that
// FlowEntry stays a plain value, copied in bulk on the hot path.
inline constexpr size_t kHelperNameMax = 15;
using HelperName = std::array<char, kHelperNameMax + 1>;

struct FlowEntry {
  FlowTuple original;
  FlowTuple reply;          // carries the NAT binding: see snat()/dnat()
  uint32_t status = 0;      // IPS_* bits as the kernel reported them
  uint32_t timeout_s = 0;   // remaining lifetime; 0 = unknown (sink picks a default)
  uint32_t mark = 0;
  uint16_t zone = 0;
  uint8_t tcp_state = 0;    // TCP_CONNTRACK_* (0 = none)
  // SCTP: without the association's state and verification tags the standby's conntrack
  // judges every chunk after a failover invalid.
  uint8_t sctp_state = 0;   // SCTP_CONNTRACK_* (0 = none)
  uint32_t sctp_vtag_original = 0;  // host order
  uint32_t sctp_vtag_reply = 0;
  // Conntrack labels (nft `ct label`), bit i = label i: labels[i / 64] >> (i % 64).
  std::array<uint64_t, 2> labels{};
  // Helper attached to the entry ("ftp"; empty = none): the standby's copy needs it so that a
  // command after the failover (an FTP PORT) creates its expectation on the new Master.
  HelperName helper{};
  SeqAdj seqadj_original;
  SeqAdj seqadj_reply;

  bool has_labels() const { return labels[0] != 0 || labels[1] != 0; }
  bool has_helper() const { return helper[0] != '\0'; }
  bool has_seqadj() const { return !seqadj_original.empty() || !seqadj_reply.empty(); }
  bool is_snat() const { return status & flow_status::kSrcNat; }
  bool is_dnat() const { return status & flow_status::kDstNat; }
  friend bool operator==(const FlowEntry&, const FlowEntry&) = default;
};

enum class FlowChangeKind : uint8_t { New, Update, Destroy };

struct FlowChange {
  FlowChangeKind kind = FlowChangeKind::New;
  FlowEntry entry;
  // New only: a copy the sink holds under the same original tuple belongs to an earlier flow
  // and is replaced, NAT binding included, not updated. Set for the Master's creation events
  // (its kernel made this entry just now) and, on the sink, for a repair's entry whose local
  // copy has another reply tuple. A port reused while the old flow's copy lingered otherwise
  // kept the old NAT binding, and the session died at the next failover.
  bool replaces_copy = false;
  friend bool operator==(const FlowChange&, const FlowChange&) = default;
};

const char* to_string(FlowChangeKind kind);

}  // namespace fwha
