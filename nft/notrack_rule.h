// A NotrackRule (own_traffic.h) as the libnftnl rule object the kernel gets: pure object
// building, no kernel, so the expressions are unit-tested (tests/unit/test_own_traffic.cpp).
#pragma once

#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include <memory>

#include "nft/own_traffic.h"

namespace fwha::nft {

inline constexpr const char* kTableName = "fwha";  // family inet

template <class T, void (*Free)(const T*)>
struct NftnlFree {
  void operator()(T* p) const { Free(p); }
};
using NftnlTable = std::unique_ptr<nftnl_table, NftnlFree<nftnl_table, nftnl_table_free>>;
using NftnlChain = std::unique_ptr<nftnl_chain, NftnlFree<nftnl_chain, nftnl_chain_free>>;
using NftnlRule = std::unique_ptr<nftnl_rule, NftnlFree<nftnl_rule, nftnl_rule_free>>;

constexpr const char* chain_name(Hook h) { return h == Hook::Prerouting ? "prerouting" : "output"; }

// The rule for chain_name(spec.hook) of table inet kTableName; null when out of memory.
NftnlRule build_rule(const NotrackRule& spec);

}  // namespace fwha::nft
