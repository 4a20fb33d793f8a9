#include "nft/notrack_rule.h"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

namespace fwha::nft {
namespace {

// Appends one expression to `r` (the rule owns it from then on).
nftnl_expr* add_expr(nftnl_rule* r, const char* name) {
  nftnl_expr* e = nftnl_expr_alloc(name);
  if (e) nftnl_rule_add_expr(r, e);
  return e;
}

bool load_meta(nftnl_rule* r, uint32_t key) {
  nftnl_expr* e = add_expr(r, "meta");
  if (!e) return false;
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  return true;
}

bool load_payload(nftnl_rule* r, uint32_t base, uint32_t offset, uint32_t len) {
  nftnl_expr* e = add_expr(r, "payload");
  if (!e) return false;
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  return true;
}

bool compare_eq(nftnl_rule* r, const void* data, uint32_t len) {
  nftnl_expr* e = add_expr(r, "cmp");
  if (!e) return false;
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  return true;
}

}  // namespace

// The expressions in the order nft itself emits them: in an inet table an address match
// needs the family (`meta nfproto`) first, a port match the protocol (`meta l4proto`).
NftnlRule build_rule(const NotrackRule& spec) {
  NftnlRule r(nftnl_rule_alloc());
  if (!r) return nullptr;
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, kTableName);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain_name(spec.hook));
  bool ok = true;
  const IpAddress* any = spec.src ? &*spec.src : spec.dst ? &*spec.dst : nullptr;
  if (any) {
    const bool v4 = any->family == Family::V4;
    const uint8_t nfproto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
    ok = ok && load_meta(r.get(), NFT_META_NFPROTO) && compare_eq(r.get(), &nfproto, 1);
    const uint32_t len = v4 ? 4 : 16;
    const uint32_t saddr = v4 ? 12 : 8;  // offsetof(iphdr, saddr), offsetof(ipv6hdr, saddr)
    const uint32_t daddr = v4 ? 16 : 24;
    if (spec.src) {
      ok = ok && load_payload(r.get(), NFT_PAYLOAD_NETWORK_HEADER, saddr, len) &&
           compare_eq(r.get(), spec.src->bytes.data(), len);
    }
    if (spec.dst) {
      ok = ok && load_payload(r.get(), NFT_PAYLOAD_NETWORK_HEADER, daddr, len) &&
           compare_eq(r.get(), spec.dst->bytes.data(), len);
    }
  }
  ok = ok && load_meta(r.get(), NFT_META_L4PROTO) && compare_eq(r.get(), &spec.l4proto, 1);
  if (spec.sport) {
    const uint16_t port = htons(*spec.sport);
    ok = ok && load_payload(r.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2) &&
         compare_eq(r.get(), &port, 2);
  }
  if (spec.dport) {
    const uint16_t port = htons(*spec.dport);
    ok = ok && load_payload(r.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) &&
         compare_eq(r.get(), &port, 2);
  }
  ok = ok && add_expr(r.get(), "notrack");
  return ok ? std::move(r) : nullptr;
}

}  // namespace fwha::nft
