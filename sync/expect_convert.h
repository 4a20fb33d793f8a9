// ExpectEntry <-> ctnetlink expectation messages (NFNL_SUBSYS_CTNETLINK_EXP), built and parsed
// with libmnl directly: libnetfilter_conntrack's nfexp API would be one more object model for
// a handful of attributes. Pure (no socket), so it is unit-tested without a kernel;
// expect_netlink.cpp sends what it builds.
//
// What 6.18 does with them (nf_conntrack_netlink.c):
// - IPCTNL_MSG_EXP_NEW + NLM_F_CREATE finds the master by CTA_EXPECT_MASTER in CTA_EXPECT_ZONE
//   (ENOENT when missing) and refuses a master without a helper extension (EOPNOTSUPP): the
//   standby's copy of the control connection must have been created with its helper.
//   With a helper the timeout is the helper's policy (FTP: 300 s), not CTA_EXPECT_TIMEOUT.
// - CTA_EXPECT_FN names the NAT callback ("nat-follow-master") and CTA_EXPECT_NAT the saved
//   address/port and direction: together they make the data connection NATed as on the Master.
// - Dumps and events carry no CTA_EXPECT_ZONE: expectations read back are in zone 0.
#pragma once

#include <cstdint>

#include "sync/expectation.h"

struct nlmsghdr;

namespace fwha::sync {

// Upper bound of one request built by the functions below.
inline constexpr size_t kMaxExpectRequestBytes = 1024;

// An expectation message (event or dump) -> ExpectEntry; false when it cannot be carried
// (not IPv4/IPv6, a tuple missing or malformed).
bool parse_expectation(const nlmsghdr* nlh, ExpectEntry& out);

// Requests written at `at` (kMaxExpectRequestBytes free); NLM_F_ACK set.
nlmsghdr* build_expect_new(void* at, uint32_t seq, const ExpectEntry& e);
nlmsghdr* build_expect_delete(void* at, uint32_t seq, const ExpectEntry& e);

}  // namespace fwha::sync
