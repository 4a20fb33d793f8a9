// Sample conntrack entries shared by the sync unit tests.
#pragma once

#include <netinet/in.h>

#include "fwha/flow.h"

namespace fwha::test {

// A TCP flow from the LAN client, SNAT'd to the WAN VIP with a randomised port.
inline FlowEntry snat_tcp_flow(uint16_t client_port = 40000, uint16_t nat_port = 61234) {
  FlowEntry e;
  e.original.src = *IpAddress::parse("192.0.2.10");
  e.original.dst = *IpAddress::parse("198.51.100.10");
  e.original.l4proto = IPPROTO_TCP;
  e.original.src_port = client_port;
  e.original.dst_port = 9001;
  e.reply.src = e.original.dst;
  e.reply.dst = *IpAddress::parse("198.51.100.1");
  e.reply.l4proto = IPPROTO_TCP;
  e.reply.src_port = 9001;
  e.reply.dst_port = nat_port;
  e.status = flow_status::kSeenReply | flow_status::kAssured | flow_status::kConfirmed |
             flow_status::kSrcNat | flow_status::kSrcNatDone | flow_status::kDstNatDone;
  e.timeout_s = 431999;
  e.mark = 7;
  e.tcp_state = 3;  // ESTABLISHED
  return e;
}

inline FlowEntry icmpv6_flow() {
  FlowEntry e;
  e.original.src = *IpAddress::parse("fd00:1::10");
  e.original.dst = *IpAddress::parse("fd00:2::10");
  e.original.l4proto = IPPROTO_ICMPV6;
  e.original.icmp_id = 77;
  e.original.icmp_type = 128;
  e.reply.src = e.original.dst;
  e.reply.dst = e.original.src;
  e.reply.l4proto = IPPROTO_ICMPV6;
  e.reply.icmp_id = 77;
  e.reply.icmp_type = 129;
  e.status = flow_status::kSeenReply | flow_status::kConfirmed;
  e.timeout_s = 29;
  e.zone = 3;
  return e;
}

}  // namespace fwha::test
