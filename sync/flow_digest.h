// Identity and fingerprints of conntrack entries for reconciliation (issue 3).
//
// A flow's key is its original tuple plus zone: what the kernel uses to find the entry. The
// key hash picks one of kBuckets buckets, so both nodes partition their tables identically.
// A bucket's digest is the XOR of the content hashes of its entries: order-independent and
// cheap to maintain, so each side computes it from a dump in one pass. The content hash
// covers what replication must carry (tuples, NAT, mark, zone, TCP/SCTP state, labels, helper,
// NAT sequence adjustment, the status bits the sink can set) and leaves out what legitimately
// differs between nodes (timeouts, the kernel's internal status bits).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "fwha/flow.h"

namespace fwha::sync {

// A bucket is compared whole, and repaired whole when it differs. Under churn a round finds
// buckets differing only because a change crossed the two dumps (the source's, then the
// sink's, a second or more apart at 200k entries), and each such bucket costs its whole
// content: with 4096 buckets (~50 entries each at 200k) a round at 2000 new flows/s resent
// 30-40 % of the table (docs/performance.md, "Rounds under churn"). 65536 buckets cut that
// by 8 (measured); a summary is then 65536 digests of 8 bytes, once per round.
inline constexpr uint32_t kBuckets = 65536;

struct FlowKey {
  FlowTuple original;
  uint16_t zone = 0;
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

inline FlowKey key_of(const FlowEntry& e) { return FlowKey{e.original, e.zone}; }

uint64_t key_hash(const FlowKey& k);
uint64_t content_hash(const FlowEntry& e);
// The reply tuple alone: two copies of a flow with different hashes have different NAT.
uint64_t reply_hash(const FlowEntry& e);
// Before session 20: what a RepairRequest without bucket_count refers to.
inline constexpr uint32_t kBucketsBefore65536 = 4096;
inline uint32_t bucket_of(const FlowKey& k, uint32_t buckets = kBuckets) {
  return static_cast<uint32_t>(key_hash(k) % buckets);
}

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const { return static_cast<size_t>(key_hash(k)); }
};

// Per-bucket digest and entry count of a table.
struct TableDigest {
  std::vector<uint64_t> digest = std::vector<uint64_t>(kBuckets, 0);
  std::vector<uint32_t> count = std::vector<uint32_t>(kBuckets, 0);
  uint64_t entries = 0;

  void add(const FlowEntry& e);
  // Buckets whose digest differs from `other` (same size required).
  std::vector<uint32_t> differing(const std::vector<uint64_t>& other) const;
};

}  // namespace fwha::sync
