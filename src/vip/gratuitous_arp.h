#pragma once

#include <system_error>

#include "fwha/ip_address.h"
#include "fwha/unique_fd.h"

namespace fwha::vip {

// An AF_PACKET socket to send gratuitous ARP through, opened once: closing a packet socket
// waits for an RCU grace period (synchronize_net), which on a loaded node held the election
// thread for 70-200 ms when each announce opened and closed its own. Protocol 0: it
// receives nothing.
UniqueFd open_arp_socket(std::error_code& ec);

// Sends one gratuitous ARP for `address` out of `ifindex` through `packet_socket` (broadcast
// ARP request with sender IP = target IP, sender MAC = the interface's MAC).
std::error_code send_gratuitous_arp(int packet_socket, int ifindex, const IpAddress& address);

}  // namespace fwha::vip
