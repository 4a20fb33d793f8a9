// FlowEntry <-> nf_conntrack without a kernel. The create object is checked both as library
// attributes and as the ctnetlink message it becomes, because the NAT trap (copied reply
// tuple + SNAT = no NAT) is only visible in what goes on the wire. Entries "as the kernel
// reports them" are built with explicit reply tuples and pushed through nfct_nlmsg_build /
// nfct_nlmsg_parse, the same parser the netlink adapter uses.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>

#include <array>
#include <cstring>
#include <vector>

#include "fwha/flow.h"
#include "sync/conntrack_convert.h"

namespace fwha::sync {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

uint32_t v4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;  // network order, as the library stores it
}

bool is_set(const NfConntrackPtr& ct, nf_conntrack_attr a) {
  return nfct_attr_is_set(ct.get(), a) == 1;
}

// 192.0.2.10:40000 -> 198.51.100.20:80, SNAT'd to 203.0.113.1:50000, as the Master reports it.
FlowEntry tcp_snat_v4() {
  FlowEntry e;
  e.original = {ip("192.0.2.10"), ip("198.51.100.20"), IPPROTO_TCP, 40000, 80};
  e.reply = {ip("198.51.100.20"), ip("203.0.113.1"), IPPROTO_TCP, 80, 50000};
  e.status = IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED | IPS_SRC_NAT | IPS_SRC_NAT_DONE |
             IPS_DST_NAT_DONE;  // 0x19e
  e.tcp_state = TCP_CONNTRACK_ESTABLISHED;
  e.mark = 0x42;
  return e;
}

// fd00::53 is reached as fd00:1::1:53 (DNAT to fd00::53:5353), IPv6 UDP.
FlowEntry udp_dnat_v6() {
  FlowEntry e;
  e.original = {ip("fd00:2::7"), ip("fd00:1::1"), IPPROTO_UDP, 33333, 53};
  e.reply = {ip("fd00::53"), ip("fd00:2::7"), IPPROTO_UDP, 5353, 33333};
  e.status = IPS_SEEN_REPLY | IPS_CONFIRMED | IPS_DST_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
  e.timeout_s = 77;
  e.zone = 3;
  return e;
}

FlowEntry icmp_snat_v4() {
  FlowEntry e;
  e.original = {ip("192.0.2.10"), ip("198.51.100.20"), IPPROTO_ICMP};
  e.original.icmp_type = 8;
  e.original.icmp_id = 777;
  e.reply = {ip("198.51.100.20"), ip("203.0.113.1"), IPPROTO_ICMP};
  e.reply.icmp_type = 0;
  e.reply.icmp_id = 777;
  e.status = 0x19a;
  e.timeout_s = 29;
  return e;
}

// Top-level CTA_* attributes of a built message.
struct Wire {
  std::array<const nlattr*, CTA_MAX + 1> tb{};
  const nlattr* operator[](int type) const { return tb[static_cast<size_t>(type)]; }
};

Wire to_wire(const nf_conntrack* ct, std::vector<char>& buf) {
  buf.assign(8192, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO);
  EXPECT_EQ(nfct_nlmsg_build(nlh, ct), 0);
  Wire w;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* a, void* data) {
        auto* tb = static_cast<std::array<const nlattr*, CTA_MAX + 1>*>(data);
        if (mnl_attr_get_type(a) <= CTA_MAX) (*tb)[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
      },
      &w.tb);
  return w;
}

// Round trip through the wire format, as the adapter receives kernel messages.
FlowEntry via_netlink(const NfConntrackPtr& ct) {
  std::vector<char> buf(8192);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = nfct_get_attr_u8(ct.get(), ATTR_ORIG_L3PROTO);
  EXPECT_EQ(nfct_nlmsg_build(nlh, ct.get()), 0);
  NfConntrackPtr parsed(nfct_new());
  EXPECT_EQ(nfct_nlmsg_parse(nlh, parsed.get()), 0);
  FlowEntry out;
  EXPECT_TRUE(from_nf_conntrack(parsed.get(), out));
  return out;
}

// ---- create ---------------------------------------------------------------------------------

TEST(ConntrackConvertCreate, SnatTcpHasOriginalTupleAndSnatFromReply) {
  FlowEntry e = tcp_snat_v4();
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  ASSERT_TRUE(ct);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ORIG_L3PROTO), AF_INET);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_ORIG_IPV4_SRC), v4("192.0.2.10"));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_ORIG_IPV4_DST), v4("198.51.100.20"));
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ORIG_L4PROTO), IPPROTO_TCP);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC), htons(40000));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ORIG_PORT_DST), htons(80));
  // NAT from the reply tuple.
  ASSERT_TRUE(is_set(ct, ATTR_SNAT_IPV4));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_SNAT_IPV4), v4("203.0.113.1"));
  ASSERT_TRUE(is_set(ct, ATTR_SNAT_PORT));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_SNAT_PORT), htons(50000));
  EXPECT_FALSE(is_set(ct, ATTR_DNAT_IPV4));
  EXPECT_FALSE(is_set(ct, ATTR_DNAT_PORT));
  // The reply tuple is SETUP_REPLY's plain inverse of the original, never the NATed one.
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_REPL_IPV4_SRC), v4("198.51.100.20"));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_REPL_IPV4_DST), v4("192.0.2.10"));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_REPL_PORT_SRC), htons(80));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_REPL_PORT_DST), htons(40000));
}

TEST(ConntrackConvertCreate, StatusKeepsOnlyAssuredAndSeenReply) {
  FlowEntry e = tcp_snat_v4();
  e.status |= IPS_EXPECTED | IPS_DYING | IPS_FIXED_TIMEOUT | IPS_HELPER | IPS_OFFLOAD |
              IPS_SEQ_ADJUST | IPS_DST_NAT;
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_STATUS), uint32_t{IPS_ASSURED | IPS_SEEN_REPLY});

  e.status = IPS_CONFIRMED;  // unreplied flow
  ct = to_nf_conntrack_for_create(e);
  EXPECT_TRUE(is_set(ct, ATTR_STATUS));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_STATUS), 0u);
}

TEST(ConntrackConvertCreate, TcpStateTimeoutMarkAndLiberalFlags) {
  FlowEntry e = tcp_snat_v4();
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_TCP_STATE), TCP_CONNTRACK_ESTABLISHED);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_TIMEOUT), 432000u);  // 0 = unknown -> default
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_MARK), 0x42u);
  EXPECT_FALSE(is_set(ct, ATTR_ZONE));  // zone 0 is not sent
  for (auto a : {ATTR_TCP_FLAGS_ORIG, ATTR_TCP_MASK_ORIG, ATTR_TCP_FLAGS_REPL, ATTR_TCP_MASK_REPL})
    EXPECT_EQ(nfct_get_attr_u8(ct.get(), a), IP_CT_TCP_FLAG_BE_LIBERAL) << a;

  e.timeout_s = 1234;
  ct = to_nf_conntrack_for_create(e);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_TIMEOUT), 1234u);
}

TEST(ConntrackConvertCreate, DefaultTimeoutsPerProtocol) {
  auto timeout_of = [](FlowEntry e) {
    e.timeout_s = 0;
    return nfct_get_attr_u32(to_nf_conntrack_for_create(e).get(), ATTR_TIMEOUT);
  };
  FlowEntry tcp = tcp_snat_v4();
  tcp.tcp_state = TCP_CONNTRACK_TIME_WAIT;
  EXPECT_EQ(timeout_of(tcp), 120u);
  tcp.tcp_state = TCP_CONNTRACK_NONE;
  EXPECT_EQ(timeout_of(tcp), 432000u);
  FlowEntry udp = udp_dnat_v6();
  EXPECT_EQ(timeout_of(udp), 180u);
  udp.status = IPS_CONFIRMED;  // unreplied
  EXPECT_EQ(timeout_of(udp), 30u);
  EXPECT_EQ(timeout_of(icmp_snat_v4()), 30u);
  FlowEntry gre = tcp_snat_v4();
  gre.original.l4proto = gre.reply.l4proto = IPPROTO_GRE;
  gre.status = IPS_CONFIRMED;
  EXPECT_EQ(timeout_of(gre), 600u);
}

TEST(ConntrackConvertCreate, DnatUdpV6FromReplySource) {
  NfConntrackPtr ct = to_nf_conntrack_for_create(udp_dnat_v6());
  ASSERT_TRUE(ct);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ORIG_L3PROTO), AF_INET6);
  EXPECT_EQ(
      std::memcmp(nfct_get_attr(ct.get(), ATTR_ORIG_IPV6_SRC), ip("fd00:2::7").bytes.data(), 16),
      0);
  EXPECT_EQ(
      std::memcmp(nfct_get_attr(ct.get(), ATTR_ORIG_IPV6_DST), ip("fd00:1::1").bytes.data(), 16),
      0);
  ASSERT_TRUE(is_set(ct, ATTR_DNAT_IPV6));
  EXPECT_EQ(std::memcmp(nfct_get_attr(ct.get(), ATTR_DNAT_IPV6), ip("fd00::53").bytes.data(), 16),
            0);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_DNAT_PORT), htons(5353));
  EXPECT_FALSE(is_set(ct, ATTR_SNAT_IPV6));
  EXPECT_FALSE(is_set(ct, ATTR_SNAT_PORT));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_STATUS), uint32_t{IPS_SEEN_REPLY});
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_TIMEOUT), 77u);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ZONE), 3);
  EXPECT_FALSE(is_set(ct, ATTR_TCP_STATE));
  EXPECT_FALSE(is_set(ct, ATTR_TCP_FLAGS_ORIG));
}

// Nested attributes of `a`, by type.
std::array<const nlattr*, 32> nested_of(const nlattr* a) {
  std::array<const nlattr*, 32> tb{};
  if (a == nullptr) return tb;
  mnl_attr_parse_nested(
      a,
      [](const nlattr* x, void* data) {
        auto* t = static_cast<std::array<const nlattr*, 32>*>(data);
        if (mnl_attr_get_type(x) < 32) (*t)[mnl_attr_get_type(x)] = x;
        return MNL_CB_OK;
      },
      &tb);
  return tb;
}

FlowEntry sctp_snat_v4() {
  FlowEntry e;
  e.original = {ip("192.0.2.10"), ip("198.51.100.10"), IPPROTO_SCTP, 40000, 9002};
  e.reply = {ip("198.51.100.10"), ip("198.51.100.1"), IPPROTO_SCTP, 9002, 63408};
  e.status = 0x19e;
  e.timeout_s = 210;
  e.sctp_state = 3;  // SCTP_CONNTRACK_ESTABLISHED
  e.sctp_vtag_original = 0x11223344;
  e.sctp_vtag_reply = 0x55667788;
  return e;
}

// libnetfilter_conntrack 1.0.9 sends no NAT id for ICMP (the kernel then picks another id and
// the server sees a different flow after a failover): the NAT nest is built raw.
TEST(ConntrackConvertCreate, IcmpNatCarriesTheRemappedEchoId) {
  FlowEntry e = icmp_snat_v4();
  e.reply.icmp_id = 20125;  // fully-random SNAT remapped the id
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ICMP_ID), htons(777));
  EXPECT_FALSE(is_set(ct, ATTR_SNAT_IPV4)) << "left to append_raw_attributes";
  std::vector<char> buf;
  to_wire(ct.get(), buf);
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
  append_raw_attributes(nlh, e, true);
  Wire w;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* a, void* data) {
        auto* tb = static_cast<std::array<const nlattr*, CTA_MAX + 1>*>(data);
        if (mnl_attr_get_type(a) <= CTA_MAX) (*tb)[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
      },
      &w.tb);
  ASSERT_NE(w[CTA_NAT_SRC], nullptr);
  EXPECT_EQ(w[CTA_NAT_DST], nullptr);
  auto nat = nested_of(w[CTA_NAT_SRC]);
  ASSERT_NE(nat[CTA_NAT_V4_MINIP], nullptr);
  EXPECT_EQ(mnl_attr_get_u32(nat[CTA_NAT_V4_MINIP]), v4("203.0.113.1"));
  auto proto = nested_of(nat[CTA_NAT_PROTO]);
  ASSERT_NE(proto[CTA_PROTONAT_PORT_MIN], nullptr);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(proto[CTA_PROTONAT_PORT_MIN])), 20125);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(proto[CTA_PROTONAT_PORT_MAX])), 20125);
}

TEST(ConntrackConvertCreate, SctpCarriesStateTagsAndNatPortAndParsesBack) {
  const FlowEntry e = sctp_snat_v4();
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  std::vector<char> buf;
  to_wire(ct.get(), buf);
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
  append_raw_attributes(nlh, e, true);
  // What the kernel reports back carries the same attributes; parse our own message.
  FlowEntry back;
  back.original.l4proto = IPPROTO_SCTP;
  parse_raw_attributes(nlh, back);
  EXPECT_EQ(back.sctp_state, 3);
  EXPECT_EQ(back.sctp_vtag_original, 0x11223344u);
  EXPECT_EQ(back.sctp_vtag_reply, 0x55667788u);
  Wire w;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* a, void* data) {
        auto* tb = static_cast<std::array<const nlattr*, CTA_MAX + 1>*>(data);
        if (mnl_attr_get_type(a) <= CTA_MAX) (*tb)[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
      },
      &w.tb);
  auto proto = nested_of(nested_of(w[CTA_NAT_SRC])[CTA_NAT_PROTO]);
  ASSERT_NE(proto[CTA_PROTONAT_PORT_MIN], nullptr);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(proto[CTA_PROTONAT_PORT_MIN])), 63408);
}

TEST(ConntrackConvertParse, ReplyIcmpIdIsReadFromTheMessage) {
  std::vector<char> buf(4096, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  nlattr* reply = mnl_attr_nest_start(nlh, CTA_TUPLE_REPLY);
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_ICMP);
  mnl_attr_put_u16(nlh, CTA_PROTO_ICMP_ID, htons(20125));
  mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_TYPE, 0);
  mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_CODE, 0);
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, reply);
  FlowEntry e = icmp_snat_v4();
  parse_raw_attributes(nlh, e);
  EXPECT_EQ(e.reply.icmp_id, 20125);
  EXPECT_EQ(e.reply.icmp_type, 0);
}

TEST(ConntrackConvertCreate, SnatAndDnatTogether) {
  FlowEntry e = tcp_snat_v4();
  e.reply.src = ip("192.0.2.80");
  e.reply.src_port = 8080;
  e.status |= IPS_DST_NAT;
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_SNAT_IPV4), v4("203.0.113.1"));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_SNAT_PORT), htons(50000));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_DNAT_IPV4), v4("192.0.2.80"));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_DNAT_PORT), htons(8080));
}

TEST(ConntrackConvertCreate, WireMessageCarriesNatAndUnNatedReply) {
  NfConntrackPtr ct = to_nf_conntrack_for_create(tcp_snat_v4());
  std::vector<char> buf;
  Wire w = to_wire(ct.get(), buf);
  ASSERT_NE(w[CTA_TUPLE_ORIG], nullptr);
  ASSERT_NE(w[CTA_TUPLE_REPLY], nullptr);  // the kernel requires both tuples on create
  ASSERT_NE(w[CTA_NAT_SRC], nullptr);
  EXPECT_EQ(w[CTA_NAT_DST], nullptr);
  ASSERT_NE(w[CTA_STATUS], nullptr);
  // The library ORs CONFIRMED into every status it sends; the kernel expects it.
  EXPECT_EQ(ntohl(mnl_attr_get_u32(w[CTA_STATUS])),
            uint32_t{IPS_ASSURED | IPS_SEEN_REPLY | IPS_CONFIRMED});
  ASSERT_NE(w[CTA_TIMEOUT], nullptr);
  EXPECT_EQ(ntohl(mnl_attr_get_u32(w[CTA_TIMEOUT])), 432000u);
  EXPECT_NE(w[CTA_PROTOINFO], nullptr);
  EXPECT_NE(w[CTA_MARK], nullptr);
  EXPECT_EQ(w[CTA_ZONE], nullptr);

  // The reply tuple on the wire, parsed back, is the inverse of the original (no NAT in it).
  NfConntrackPtr back(nfct_new());
  ASSERT_EQ(nfct_nlmsg_parse(reinterpret_cast<nlmsghdr*>(buf.data()), back.get()), 0);
  EXPECT_EQ(nfct_get_attr_u32(back.get(), ATTR_REPL_IPV4_DST), v4("192.0.2.10"));
  EXPECT_EQ(nfct_get_attr_u16(back.get(), ATTR_REPL_PORT_DST), htons(40000));
}

// ---- update / delete ------------------------------------------------------------------------

TEST(ConntrackConvertUpdate, CarriesChangeableAttributesAndNoNat) {
  FlowEntry e = tcp_snat_v4();
  e.timeout_s = 3600;
  e.zone = 9;
  NfConntrackPtr ct = to_nf_conntrack_for_update(e);
  ASSERT_TRUE(ct);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_ORIG_IPV4_SRC), v4("192.0.2.10"));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC), htons(40000));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_STATUS), uint32_t{IPS_ASSURED | IPS_SEEN_REPLY});
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_TIMEOUT), 3600u);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_MARK), 0x42u);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_TCP_STATE), TCP_CONNTRACK_ESTABLISHED);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ZONE), 9);  // needed to find the entry
  for (auto a : {ATTR_SNAT_IPV4, ATTR_SNAT_PORT, ATTR_DNAT_IPV4, ATTR_DNAT_PORT, ATTR_REPL_IPV4_SRC,
                 ATTR_REPL_IPV4_DST, ATTR_REPL_PORT_DST})
    EXPECT_FALSE(is_set(ct, a)) << a;
  // The entry found may hold window data of an earlier connection on the same tuple, or from
  // when this node was Master: liberal, as on create, or its packets are dropped after a
  // failover.
  for (auto a : {ATTR_TCP_FLAGS_ORIG, ATTR_TCP_MASK_ORIG, ATTR_TCP_FLAGS_REPL, ATTR_TCP_MASK_REPL})
    EXPECT_EQ(nfct_get_attr_u8(ct.get(), a), IP_CT_TCP_FLAG_BE_LIBERAL) << a;

  std::vector<char> buf;
  Wire w = to_wire(ct.get(), buf);
  EXPECT_NE(w[CTA_TUPLE_ORIG], nullptr);
  EXPECT_EQ(w[CTA_TUPLE_REPLY], nullptr);
  EXPECT_EQ(w[CTA_NAT_SRC], nullptr);  // the kernel answers EOPNOTSUPP to NAT on update
  EXPECT_EQ(w[CTA_NAT_DST], nullptr);
}

TEST(ConntrackConvertUpdate, NoStatusWhenNothingSettable) {
  FlowEntry e = tcp_snat_v4();
  e.status = IPS_CONFIRMED | IPS_SRC_NAT;  // not replied yet: nothing the kernel lets us add
  NfConntrackPtr ct = to_nf_conntrack_for_update(e);
  EXPECT_FALSE(is_set(ct, ATTR_STATUS));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_TIMEOUT), 432000u);
}

TEST(ConntrackConvertDelete, OriginalTupleAndZoneOnly) {
  FlowEntry e = udp_dnat_v6();
  NfConntrackPtr ct = to_nf_conntrack_for_delete(e);
  ASSERT_TRUE(ct);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ORIG_L3PROTO), AF_INET6);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ORIG_L4PROTO), IPPROTO_UDP);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC), htons(33333));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ORIG_PORT_DST), htons(53));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ZONE), 3);
  for (auto a : {ATTR_STATUS, ATTR_TIMEOUT, ATTR_MARK, ATTR_DNAT_IPV6, ATTR_DNAT_PORT,
                 ATTR_SNAT_IPV6, ATTR_REPL_IPV6_SRC, ATTR_TCP_STATE})
    EXPECT_FALSE(is_set(ct, a)) << a;

  e.zone = 0;
  EXPECT_FALSE(is_set(to_nf_conntrack_for_delete(e), ATTR_ZONE));
}

// ---- from the kernel's point of view --------------------------------------------------------

// An nf_conntrack filled the way a kernel event/dump is: both tuples explicit.
NfConntrackPtr kernel_like(const FlowEntry& e) {
  NfConntrackPtr ct(nfct_new());
  const bool is4 = e.original.src.family == Family::V4;
  nfct_set_attr_u8(ct.get(), ATTR_ORIG_L3PROTO, is4 ? AF_INET : AF_INET6);
  nfct_set_attr_u8(ct.get(), ATTR_REPL_L3PROTO, is4 ? AF_INET : AF_INET6);
  nfct_set_attr(ct.get(), is4 ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC,
                e.original.src.bytes.data());
  nfct_set_attr(ct.get(), is4 ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST,
                e.original.dst.bytes.data());
  nfct_set_attr(ct.get(), is4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC, e.reply.src.bytes.data());
  nfct_set_attr(ct.get(), is4 ? ATTR_REPL_IPV4_DST : ATTR_REPL_IPV6_DST, e.reply.dst.bytes.data());
  nfct_set_attr_u8(ct.get(), ATTR_ORIG_L4PROTO, e.original.l4proto);
  nfct_set_attr_u8(ct.get(), ATTR_REPL_L4PROTO, e.reply.l4proto);
  if (e.original.l4proto == IPPROTO_ICMP || e.original.l4proto == IPPROTO_ICMPV6) {
    nfct_set_attr_u8(ct.get(), ATTR_ICMP_TYPE, e.original.icmp_type);
    nfct_set_attr_u8(ct.get(), ATTR_ICMP_CODE, e.original.icmp_code);
    nfct_set_attr_u16(ct.get(), ATTR_ICMP_ID, htons(e.original.icmp_id));
  } else {
    nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC, htons(e.original.src_port));
    nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_DST, htons(e.original.dst_port));
    nfct_set_attr_u16(ct.get(), ATTR_REPL_PORT_SRC, htons(e.reply.src_port));
    nfct_set_attr_u16(ct.get(), ATTR_REPL_PORT_DST, htons(e.reply.dst_port));
  }
  nfct_set_attr_u32(ct.get(), ATTR_STATUS, e.status);
  nfct_set_attr_u32(ct.get(), ATTR_TIMEOUT, e.timeout_s);
  nfct_set_attr_u32(ct.get(), ATTR_MARK, e.mark);
  if (e.zone) nfct_set_attr_u16(ct.get(), ATTR_ZONE, e.zone);
  if (e.tcp_state) nfct_set_attr_u8(ct.get(), ATTR_TCP_STATE, e.tcp_state);
  return ct;
}

TEST(ConntrackConvertFromKernel, SnatTcpV4RoundTrip) {
  FlowEntry e = tcp_snat_v4();
  e.timeout_s = 431999;
  FlowEntry direct;
  ASSERT_TRUE(from_nf_conntrack(kernel_like(e).get(), direct));
  EXPECT_EQ(direct, e);
  EXPECT_TRUE(direct.is_snat());
  EXPECT_EQ(direct.reply.dst, ip("203.0.113.1"));
  EXPECT_EQ(direct.reply.dst_port, 50000);
  EXPECT_EQ(direct.status, 0x19eu);
  EXPECT_EQ(direct.tcp_state, TCP_CONNTRACK_ESTABLISHED);
  EXPECT_EQ(via_netlink(kernel_like(e)), e);
}

TEST(ConntrackConvertFromKernel, SnatTcpV6RoundTrip) {
  FlowEntry e;
  e.original = {ip("fd00::10"), ip("fd00:1::20"), IPPROTO_TCP, 41000, 443};
  e.reply = {ip("fd00:1::20"), ip("fd00:2::1"), IPPROTO_TCP, 443, 61000};
  e.status = 0x19e;
  e.timeout_s = 4999;
  e.mark = 1;
  e.zone = 2;
  e.tcp_state = TCP_CONNTRACK_FIN_WAIT;
  FlowEntry out = via_netlink(kernel_like(e));
  EXPECT_EQ(out, e);
  EXPECT_EQ(out.original.src.family, Family::V6);
  EXPECT_EQ(out.reply.dst, ip("fd00:2::1"));
  EXPECT_EQ(out.zone, 2);
}

TEST(ConntrackConvertFromKernel, DnatUdpV6RoundTrip) {
  FlowEntry e = udp_dnat_v6();
  FlowEntry out = via_netlink(kernel_like(e));
  EXPECT_EQ(out, e);
  EXPECT_TRUE(out.is_dnat());
  EXPECT_FALSE(out.is_snat());
  EXPECT_EQ(out.reply.src_port, 5353);
  EXPECT_EQ(out.tcp_state, 0);
}

TEST(ConntrackConvertFromKernel, IcmpEchoRoundTrip) {
  FlowEntry e = icmp_snat_v4();
  FlowEntry out = via_netlink(kernel_like(e));
  EXPECT_EQ(out, e);
  EXPECT_EQ(out.original.icmp_type, 8);
  EXPECT_EQ(out.original.icmp_id, 777);
  EXPECT_EQ(out.reply.icmp_type, 0);  // echo reply
  EXPECT_EQ(out.reply.icmp_id, 777);
  EXPECT_EQ(out.original.src_port, 0);

  FlowEntry e6;
  e6.original = {ip("fd00::10"), ip("fd00:1::20"), IPPROTO_ICMPV6};
  e6.original.icmp_type = 128;
  e6.original.icmp_id = 4242;
  e6.reply = {ip("fd00:1::20"), ip("fd00::10"), IPPROTO_ICMPV6};
  e6.reply.icmp_type = 129;
  e6.reply.icmp_id = 4242;
  e6.status = 0xa;
  e6.timeout_s = 30;
  EXPECT_EQ(via_netlink(kernel_like(e6)), e6);
}

TEST(ConntrackConvertFromKernel, DumpedEntryRecreatesWithSameNat) {
  // What the standby does with a dumped/evented entry: the create object must carry the NAT
  // binding the Master reported.
  FlowEntry e = via_netlink(kernel_like(tcp_snat_v4()));
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_SNAT_IPV4), v4("203.0.113.1"));
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_SNAT_PORT), htons(50000));
}

TEST(ConntrackConvertFromKernel, RejectsWhatCannotBeCarried) {
  FlowEntry out;
  NfConntrackPtr empty(nfct_new());
  EXPECT_FALSE(from_nf_conntrack(empty.get(), out));

  NfConntrackPtr other(nfct_new());
  nfct_set_attr_u8(other.get(), ATTR_ORIG_L3PROTO, AF_BRIDGE);
  EXPECT_FALSE(from_nf_conntrack(other.get(), out));

  NfConntrackPtr no_addr(nfct_new());
  nfct_set_attr_u8(no_addr.get(), ATTR_ORIG_L3PROTO, AF_INET);
  nfct_set_attr_u8(no_addr.get(), ATTR_ORIG_L4PROTO, IPPROTO_UDP);
  EXPECT_FALSE(from_nf_conntrack(no_addr.get(), out));
}

}  // namespace
}  // namespace fwha::sync

// ---- labels, helper, NAT sequence adjustment --------------------------------------------------

namespace fwha::sync {
namespace {

FlowEntry ftp_control_with_state() {
  FlowEntry e = tcp_snat_v4();
  e.labels = {uint64_t{1} << 3, uint64_t{1} << 63};  // labels 3 and 127
  std::strcpy(e.helper.data(), "ftp");
  e.seqadj_original = {189149930, 0, 2};
  e.status |= IPS_SEQ_ADJUST;
  return e;
}

TEST(ConntrackConvertOptional, CreateCarriesLabelsHelperAndSeqAdj) {
  const FlowEntry e = ftp_control_with_state();
  NfConntrackPtr ct = to_nf_conntrack_for_create(e);
  std::vector<char> buf;
  Wire w = to_wire(ct.get(), buf);
  ASSERT_NE(w[CTA_LABELS], nullptr);
  EXPECT_EQ(mnl_attr_get_payload_len(w[CTA_LABELS]), 16u);
  ASSERT_NE(w[CTA_HELP], nullptr);
  ASSERT_NE(w[CTA_SEQ_ADJ_ORIG], nullptr);
  ASSERT_NE(w[CTA_SEQ_ADJ_REPLY], nullptr);
  // What the adapter reads back from such a message is what was sent.
  const FlowEntry back = via_netlink(ct);
  EXPECT_EQ(back.labels, e.labels);
  EXPECT_STREQ(back.helper.data(), "ftp");
  EXPECT_EQ(back.seqadj_original, e.seqadj_original);
  EXPECT_EQ(back.seqadj_reply, e.seqadj_reply);
}

TEST(ConntrackConvertOptional, UpdateCarriesLabelsAndSeqAdjButNoHelper) {
  NfConntrackPtr ct = to_nf_conntrack_for_update(ftp_control_with_state());
  std::vector<char> buf;
  Wire w = to_wire(ct.get(), buf);
  EXPECT_NE(w[CTA_LABELS], nullptr);
  EXPECT_NE(w[CTA_SEQ_ADJ_ORIG], nullptr);
  EXPECT_EQ(w[CTA_HELP], nullptr);  // the kernel cannot attach one to an existing entry
}

TEST(ConntrackConvertOptional, OmittedAttributesAreLeftOut) {
  NfConntrackPtr ct = to_nf_conntrack_for_create(ftp_control_with_state(),
                                                 kOmitLabels | kOmitHelper);
  std::vector<char> buf;
  Wire w = to_wire(ct.get(), buf);
  EXPECT_EQ(w[CTA_LABELS], nullptr);
  EXPECT_EQ(w[CTA_HELP], nullptr);
  EXPECT_NE(w[CTA_SEQ_ADJ_ORIG], nullptr);
}

TEST(ConntrackConvertOptional, EntryWithoutThemSendsNone) {
  NfConntrackPtr ct = to_nf_conntrack_for_create(tcp_snat_v4());
  std::vector<char> buf;
  Wire w = to_wire(ct.get(), buf);
  EXPECT_EQ(w[CTA_LABELS], nullptr);
  EXPECT_EQ(w[CTA_HELP], nullptr);
  EXPECT_EQ(w[CTA_SEQ_ADJ_ORIG], nullptr);
}

}  // namespace
}  // namespace fwha::sync

// ---- events ---------------------------------------------------------------------------------

namespace fwha::sync {
namespace {

// Appends a ctnetlink message of `type` (subsystem in the high byte) to `datagram`; with `ct`,
// its attributes as nfct_nlmsg_build writes them, else none at all.
void append_message(std::vector<char>& datagram, uint16_t type, uint16_t flags,
                    const nf_conntrack* ct, uint8_t family) {
  std::vector<char> buf(8192, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  if (ct) {
    EXPECT_EQ(nfct_nlmsg_build(nlh, ct), 0);
  }
  datagram.insert(datagram.end(), buf.data(), buf.data() + NLMSG_ALIGN(nlh->nlmsg_len));
}

uint16_t ctnetlink(uint8_t msg) { return static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msg); }

// One datagram with a creation, an event without any attribute (which no entry can be made
// of), a destruction and a message of another subsystem: the two conntrack events that can
// be carried come out, the one that cannot is counted, the other subsystem's is no concern.
TEST(ConntrackEvents, ADatagramsEventsAreCarriedOrCounted) {
  const FlowEntry created = tcp_snat_v4();
  const FlowEntry gone = udp_dnat_v6();
  std::vector<char> datagram;
  append_message(datagram, ctnetlink(IPCTNL_MSG_CT_NEW), NLM_F_CREATE | NLM_F_EXCL,
                 to_nf_conntrack_for_create(created).get(), AF_INET);
  append_message(datagram, ctnetlink(IPCTNL_MSG_CT_NEW), 0, nullptr, AF_INET);
  append_message(datagram, ctnetlink(IPCTNL_MSG_CT_DELETE), 0,
                 to_nf_conntrack_for_delete(gone).get(), AF_INET6);
  append_message(datagram, static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK_EXP << 8) | 0), 0,
                 nullptr, AF_INET);
  std::vector<FlowChange> out;
  EXPECT_EQ(parse_event_datagram(datagram.data(), static_cast<int>(datagram.size()), out), 1u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, FlowChangeKind::New);
  EXPECT_TRUE(out[0].replaces_copy) << "the kernel made it just now";
  EXPECT_EQ(out[0].entry.original, created.original);
  EXPECT_EQ(out[1].kind, FlowChangeKind::Destroy);
  EXPECT_EQ(out[1].entry.original, gone.original);
  EXPECT_EQ(out[1].entry.zone, gone.zone);
}

}  // namespace
}  // namespace fwha::sync
