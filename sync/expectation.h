// A conntrack expectation in fwha's own words: what a helper (the FTP helper reading a PORT
// command) told the kernel to let in as a RELATED connection, with the NAT that connection
// gets. Replicated so that a data connection announced before a failover is let in by the
// new Master (issue 3).
#pragma once

#include <array>
#include <cstdint>

#include "fwha/flow.h"

namespace fwha::sync {

// Expectfn names are longer than helper names ("nat-follow-master").
inline constexpr size_t kExpectFnNameMax = 31;

struct ExpectEntry {
  FlowTuple master;  // original tuple of the connection that announced it
  FlowTuple tuple;   // the expected connection
  FlowTuple mask;    // addresses are masks; ports are masks (0xffff = must match)
  uint16_t zone = 0;
  uint32_t timeout_s = 0;
  uint32_t flags = 0;  // NF_CT_EXPECT_PERMANENT (1) | NF_CT_EXPECT_INACTIVE (2)
  uint32_t expect_class = 0;
  HelperName helper{};
  std::array<char, kExpectFnNameMax + 1> function{};
  bool has_nat = false;
  uint32_t nat_dir = 0;  // 0 original, 1 reply
  FlowTuple nat;         // src / src_port: where the expected connection is mapped to

  friend bool operator==(const ExpectEntry&, const ExpectEntry&) = default;
};

enum class ExpectChangeKind : uint8_t { New, Destroy };

struct ExpectChange {
  ExpectChangeKind kind = ExpectChangeKind::New;
  ExpectEntry entry;
  friend bool operator==(const ExpectChange&, const ExpectChange&) = default;
};

// Flags userspace may set (include/uapi/linux/netfilter/nf_conntrack_common.h);
// NF_CT_EXPECT_USERSPACE is the kernel's own and stripped on create anyway.
inline constexpr uint32_t kExpectSettableFlags = 0x3;

}  // namespace fwha::sync
