#include "sync/expect_convert.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <span>

#include "sync/conntrack_convert.h"

namespace fwha::sync {
namespace {

struct Attrs {
  static constexpr int kMax = 16;
  std::array<const nlattr*, kMax + 1> at{};
};

int collect(const nlattr* a, void* data) {
  auto* t = static_cast<Attrs*>(data);
  const int type = mnl_attr_get_type(a);
  if (type >= 0 && type <= Attrs::kMax) t->at[static_cast<size_t>(type)] = a;
  return MNL_CB_OK;
}

bool nested(const nlattr* a, Attrs& out) {
  return a != nullptr && mnl_attr_parse_nested(a, collect, &out) >= 0;
}

bool has_ports(uint8_t p) {
  return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_UDPLITE || p == IPPROTO_SCTP ||
         p == IPPROTO_DCCP;
}

bool address(const nlattr* a, size_t len, IpAddress& out) {
  if (a == nullptr || mnl_attr_get_payload_len(a) != len) return false;
  auto v = IpAddress::from_bytes(static_cast<const uint8_t*>(mnl_attr_get_payload(a)), len);
  if (!v) return false;
  out = *v;
  return true;
}

uint16_t be16(const nlattr* a) {
  return a && mnl_attr_get_payload_len(a) >= 2 ? ntohs(mnl_attr_get_u16(a)) : 0;
}

uint8_t u8(const nlattr* a) { return a && mnl_attr_get_payload_len(a) >= 1 ? mnl_attr_get_u8(a) : 0; }

uint32_t be32(const nlattr* a) {
  return a && mnl_attr_get_payload_len(a) >= 4 ? ntohl(mnl_attr_get_u32(a)) : 0;
}

// CTA_TUPLE_IP { SRC, DST } + CTA_TUPLE_PROTO { NUM, ports | ICMP id/type/code }.
bool parse_tuple(const nlattr* nest, bool v4, FlowTuple& t) {
  Attrs top, ip, proto;
  if (!nested(nest, top) || !nested(top.at[CTA_TUPLE_IP], ip) ||
      !nested(top.at[CTA_TUPLE_PROTO], proto))
    return false;
  const size_t len = v4 ? 4 : 16;
  if (!address(ip.at[v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC], len, t.src) ||
      !address(ip.at[v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST], len, t.dst) ||
      proto.at[CTA_PROTO_NUM] == nullptr)
    return false;
  t.l4proto = u8(proto.at[CTA_PROTO_NUM]);
  if (has_ports(t.l4proto)) {
    t.src_port = be16(proto.at[CTA_PROTO_SRC_PORT]);
    t.dst_port = be16(proto.at[CTA_PROTO_DST_PORT]);
  } else if (t.l4proto == IPPROTO_ICMP || t.l4proto == IPPROTO_ICMPV6) {
    const bool six = t.l4proto == IPPROTO_ICMPV6;
    t.icmp_id = be16(proto.at[six ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID]);
    t.icmp_type = u8(proto.at[six ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE]);
    t.icmp_code = u8(proto.at[six ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE]);
  }
  return true;
}

void copy_name(const nlattr* a, std::span<char> out) {
  if (a == nullptr) return;
  const auto* s = static_cast<const char*>(mnl_attr_get_payload(a));
  const size_t n = strnlen(s, std::min<size_t>(mnl_attr_get_payload_len(a), out.size() - 1));
  std::memcpy(out.data(), s, n);
  out[n] = '\0';
}

nlmsghdr* put_header(void* at, uint8_t msg, uint16_t flags, uint32_t seq, const ExpectEntry& e) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(at);
  nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK_EXP << 8) | msg);
  nlh->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = e.tuple.src.family == Family::V4 ? AF_INET : AF_INET6;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

}  // namespace

bool parse_expectation(const nlmsghdr* nlh, ExpectEntry& out) {
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) return false;
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  if (nfg->nfgen_family != AF_INET && nfg->nfgen_family != AF_INET6) return false;
  const bool v4 = nfg->nfgen_family == AF_INET;
  Attrs top;
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, &top) < 0) return false;
  ExpectEntry e;
  if (!parse_tuple(top.at[CTA_EXPECT_MASTER], v4, e.master) ||
      !parse_tuple(top.at[CTA_EXPECT_TUPLE], v4, e.tuple) ||
      !parse_tuple(top.at[CTA_EXPECT_MASK], v4, e.mask))
    return false;
  e.zone = be16(top.at[CTA_EXPECT_ZONE]);
  e.timeout_s = be32(top.at[CTA_EXPECT_TIMEOUT]);
  e.flags = be32(top.at[CTA_EXPECT_FLAGS]) & kExpectSettableFlags;
  e.expect_class = be32(top.at[CTA_EXPECT_CLASS]);
  copy_name(top.at[CTA_EXPECT_HELP_NAME], e.helper);
  copy_name(top.at[CTA_EXPECT_FN], e.function);
  Attrs nat;
  if (nested(top.at[CTA_EXPECT_NAT], nat) && nat.at[CTA_EXPECT_NAT_DIR] != nullptr &&
      parse_tuple(nat.at[CTA_EXPECT_NAT_TUPLE], v4, e.nat)) {
    e.has_nat = true;
    e.nat_dir = be32(nat.at[CTA_EXPECT_NAT_DIR]);
  }
  out = e;
  return true;
}

nlmsghdr* build_expect_new(void* at, uint32_t seq, const ExpectEntry& e) {
  // No NLM_F_EXCL: an expectation that exists already (a repeated snapshot) is refreshed.
  nlmsghdr* nlh = put_header(at, IPCTNL_MSG_EXP_NEW, NLM_F_CREATE, seq, e);
  put_ct_tuple(nlh, CTA_EXPECT_MASTER, e.master);
  put_ct_tuple(nlh, CTA_EXPECT_TUPLE, e.tuple);
  put_ct_tuple(nlh, CTA_EXPECT_MASK, e.mask);
  if (e.zone != 0) mnl_attr_put_u16(nlh, CTA_EXPECT_ZONE, htons(e.zone));
  mnl_attr_put_u32(nlh, CTA_EXPECT_TIMEOUT, htonl(e.timeout_s));
  mnl_attr_put_u32(nlh, CTA_EXPECT_FLAGS, htonl(e.flags & kExpectSettableFlags));
  mnl_attr_put_u32(nlh, CTA_EXPECT_CLASS, htonl(e.expect_class));
  if (e.helper[0] != '\0') mnl_attr_put_strz(nlh, CTA_EXPECT_HELP_NAME, e.helper.data());
  if (e.function[0] != '\0') mnl_attr_put_strz(nlh, CTA_EXPECT_FN, e.function.data());
  if (e.has_nat) {
    nlattr* nest = mnl_attr_nest_start(nlh, CTA_EXPECT_NAT);
    mnl_attr_put_u32(nlh, CTA_EXPECT_NAT_DIR, htonl(e.nat_dir));
    put_ct_tuple(nlh, CTA_EXPECT_NAT_TUPLE, e.nat);
    mnl_attr_nest_end(nlh, nest);
  }
  return nlh;
}

nlmsghdr* build_expect_delete(void* at, uint32_t seq, const ExpectEntry& e) {
  nlmsghdr* nlh = put_header(at, IPCTNL_MSG_EXP_DELETE, 0, seq, e);
  put_ct_tuple(nlh, CTA_EXPECT_TUPLE, e.tuple);
  if (e.zone != 0) mnl_attr_put_u16(nlh, CTA_EXPECT_ZONE, htons(e.zone));
  return nlh;
}

}  // namespace fwha::sync
