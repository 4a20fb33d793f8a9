#include "sync/flow_digest.h"

#include <cstring>

namespace fwha::sync {
namespace {

// splitmix64 finaliser: a fast, well-mixed 64-bit hash step. Not cryptographic: digests are
// compared between our own two nodes over the (trusted) sync link.
uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

uint64_t mix_address(uint64_t h, const IpAddress& a) {
  uint64_t lo = 0, hi = 0;
  for (size_t i = 0; i < 8; ++i) lo = (lo << 8) | a.bytes[i];
  for (size_t i = 8; i < 16; ++i) hi = (hi << 8) | a.bytes[i];
  return mix(mix(mix(h, static_cast<uint64_t>(a.family)), lo), hi);
}

uint64_t mix_tuple(uint64_t h, const FlowTuple& t) {
  h = mix_address(h, t.src);
  h = mix_address(h, t.dst);
  h = mix(h, (uint64_t{t.l4proto} << 32) | (uint64_t{t.src_port} << 16) | t.dst_port);
  return mix(h, (uint64_t{t.icmp_type} << 24) | (uint64_t{t.icmp_code} << 16) | t.icmp_id);
}

// Status bits the sink reproduces (ASSURED, SEEN_REPLY, and the NAT kind, which shows in the
// reply tuple anyway). CONFIRMED, *_DONE and others are the kernel's bookkeeping.
constexpr uint32_t kComparedStatus =
    flow_status::kSeenReply | flow_status::kAssured | flow_status::kSrcNat | flow_status::kDstNat;

}  // namespace

uint64_t key_hash(const FlowKey& k) { return mix(mix_tuple(0x66776861, k.original), k.zone); }

uint64_t reply_hash(const FlowEntry& e) { return mix_tuple(0x7265706c, e.reply); }

uint64_t content_hash(const FlowEntry& e) {
  uint64_t h = mix_tuple(0x636f6e74, e.original);
  h = mix_tuple(h, e.reply);
  h = mix(h, (uint64_t{e.status & kComparedStatus} << 32) | e.mark);
  h = mix(h, (uint64_t{e.zone} << 16) | (uint64_t{e.sctp_state} << 8) | e.tcp_state);
  h = mix(h, (uint64_t{e.sctp_vtag_original} << 32) | e.sctp_vtag_reply);
  // Labels, helper and sequence adjustment change what the new Master does with the flow's
  // packets, so a copy without them is drift. Entries without them skip the extra mixing.
  if (e.has_labels()) h = mix(mix(h, e.labels[0]), e.labels[1]);
  if (e.has_helper()) {
    uint64_t name[2] = {};
    static_assert(sizeof name == sizeof e.helper);
    std::memcpy(name, e.helper.data(), sizeof name);
    h = mix(mix(h, name[0]), name[1]);
  }
  if (e.has_seqadj()) {
    for (const SeqAdj* s : {&e.seqadj_original, &e.seqadj_reply}) {
      h = mix(h, (uint64_t{s->correction_pos} << 32) | s->offset_before);
      h = mix(h, s->offset_after);
    }
  }
  return h;
}

void TableDigest::add(const FlowEntry& e) {
  const uint32_t b = bucket_of(key_of(e));
  digest[b] ^= content_hash(e);
  ++count[b];
  ++entries;
}

std::vector<uint32_t> TableDigest::differing(const std::vector<uint64_t>& other) const {
  std::vector<uint32_t> out;
  for (uint32_t b = 0; b < kBuckets && b < other.size(); ++b) {
    if (digest[b] != other[b]) out.push_back(b);
  }
  return out;
}

}  // namespace fwha::sync
