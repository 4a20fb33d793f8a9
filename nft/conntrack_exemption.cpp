#include "nft/conntrack_exemption.h"

#include <arpa/inet.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <sys/time.h>

#include <map>
#include <vector>

namespace fwha::nft {
namespace {

template <class T, void (*Free)(const T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using TablePtr = std::unique_ptr<nftnl_table, Freer<nftnl_table, nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Freer<nftnl_chain, nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Freer<nftnl_rule, nftnl_rule_free>>;

constexpr const char* chain_name(Hook h) { return h == Hook::Prerouting ? "prerouting" : "output"; }

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

// The rule as expressions, in the order nft itself emits them: in an inet table an address
// match needs the family (`meta nfproto`) first, a port match the protocol.
RulePtr build_rule(const NotrackRule& spec) {
  RulePtr r(nftnl_rule_alloc());
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

// One nftables transaction (NFNL_MSG_BATCH_BEGIN ... END). Every message asks for an ACK; the
// kernel answers in order, an error for a refused message, and applies all or none.
class Batch {
 public:
  Batch() : buf_(64 * 1024), batch_(mnl_nlmsg_batch_start(buf_.data(), buf_.size())) {
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    mnl_nlmsg_batch_next(batch_);
  }
  ~Batch() { mnl_nlmsg_batch_stop(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Starts a message; `label` names it in errors.
  nlmsghdr* add(uint16_t type, uint16_t flags, std::string label) {
    labels_[seq_] = std::move(label);
    last_seq_ = seq_;
    return nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type,
                                 NFPROTO_INET, flags | NLM_F_ACK, seq_++);
  }
  // Ends the message started by add(); false when the buffer is full.
  bool next() { return mnl_nlmsg_batch_next(batch_); }

  std::error_code commit(mnl_socket* nl, std::string& what) {
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    if (!mnl_nlmsg_batch_next(batch_)) {
      what = "nftables batch too large";
      return std::make_error_code(std::errc::no_buffer_space);
    }
    if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(batch_), mnl_nlmsg_batch_size(batch_)) < 0) {
      what = "sending the nftables batch";
      return {errno, std::generic_category()};
    }
    // Bounded: the socket has a receive timeout, and each datagram brings one answer at least.
    std::vector<char> rx(MNL_SOCKET_BUFFER_SIZE);
    for (size_t answers = 0; answers <= labels_.size();) {
      const ssize_t n = mnl_socket_recvfrom(nl, rx.data(), rx.size());
      if (n < 0) {
        what = "waiting for the kernel's answer to the nftables batch";
        return {errno, std::generic_category()};
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<const nlmsghdr*>(rx.data()); mnl_nlmsg_ok(h, len);
           h = mnl_nlmsg_next(h, &len)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        ++answers;
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h));
        if (err->error != 0) {
          auto it = labels_.find(h->nlmsg_seq);
          what = it != labels_.end() ? it->second : "the nftables batch";
          return {-err->error, std::generic_category()};
        }
        if (h->nlmsg_seq == last_seq_) return {};
      }
    }
    what = "the kernel's answer to the nftables batch";
    return std::make_error_code(std::errc::protocol_error);
  }

 private:
  std::vector<char> buf_;
  mnl_nlmsg_batch* batch_;
  uint32_t seq_ = 1;
  uint32_t last_seq_ = 0;
  std::map<uint32_t, std::string> labels_;
};

}  // namespace

std::unique_ptr<ConntrackExemption> ConntrackExemption::install(
    std::span<const NotrackRule> rules, std::error_code& ec, std::string& what) {
  const std::string table = std::string("table inet ") + kTableName;
  MnlSocketPtr nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    ec = {errno, std::generic_category()};
    what = "nftables netlink socket";
    return nullptr;
  }
  const timeval timeout{.tv_sec = 2, .tv_usec = 0};
  setsockopt(mnl_socket_get_fd(nl.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

  Batch batch;
  TablePtr t(nftnl_table_alloc());
  if (!t) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    what = table;
    return nullptr;
  }
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, kTableName);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, NFT_TABLE_F_OWNER);
  // NLM_F_EXCL: a table of that name that someone else made is theirs, not replaced.
  nftnl_table_nlmsg_build_payload(
      batch.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, table), t.get());
  batch.next();
  for (const Hook hook : {Hook::Prerouting, Hook::Output}) {
    ChainPtr c(nftnl_chain_alloc());
    if (!c) {
      ec = std::make_error_code(std::errc::not_enough_memory);
      what = table;
      return nullptr;
    }
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, kTableName);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain_name(hook));
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM,
                        hook == Hook::Prerouting ? NF_INET_PRE_ROUTING : NF_INET_LOCAL_OUT);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, NF_IP_PRI_RAW);  // -300: before conntrack
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nftnl_chain_nlmsg_build_payload(
        batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, table + " chain " + chain_name(hook)), c.get());
    batch.next();
  }
  for (const auto& spec : rules) {
    RulePtr r = build_rule(spec);
    if (!r) {
      ec = std::make_error_code(std::errc::not_enough_memory);
      what = table + " rule " + describe(spec);
      return nullptr;
    }
    nftnl_rule_nlmsg_build_payload(
        batch.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, table + " rule " + describe(spec)),
        r.get());
    if (!batch.next()) {
      ec = std::make_error_code(std::errc::no_buffer_space);
      what = "nftables batch too large";
      return nullptr;
    }
  }
  if ((ec = batch.commit(nl.get(), what))) {
    if (what == table && ec == std::errc::file_exists) {
      what += " exists and is not fwhad's (someone else's table of that name)";
    } else if (what == table && ec == std::errc::operation_not_permitted) {
      what += " belongs to another running fwhad in this network namespace";
    }
    return nullptr;
  }
  return std::make_unique<ConntrackExemption>(Key{}, std::move(nl));
}

}  // namespace fwha::nft
