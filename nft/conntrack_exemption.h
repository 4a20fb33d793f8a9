// Kernel adapter: the nftables table `inet fwha` that exempts fwha's own packets from
// conntrack (own_traffic.h says which and why).
//
// The table is created with NFT_TABLE_F_OWNER: it belongs to this object's netlink socket,
// the kernel removes it when the socket closes (the daemon stops, or dies by any signal), and
// no other process can change or delete it, `nft flush ruleset` included. So nothing is left
// behind, and an operator's ruleset reload cannot silently drop the exemption.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "fwha/mnl_socket.h"
#include "nft/notrack_rule.h"
#include "nft/own_traffic.h"

namespace fwha::nft {

class ConntrackExemption {
 public:
  // Creates the table, a prerouting and an output chain at priority raw (-300, before
  // conntrack) and one `notrack` rule per entry of `rules`, in one nftables transaction: all
  // of it or nothing. On failure returns null with `ec` set and `what` saying which part the
  // kernel refused (a table of that name that is not ours: EEXIST).
  static std::unique_ptr<ConntrackExemption> install(std::span<const NotrackRule> rules,
                                                     std::error_code& ec, std::string& what);

  struct Key {  // only install() constructs one
   private:
    friend class ConntrackExemption;
    Key() = default;
  };
  ConntrackExemption(Key, MnlSocketPtr nl) : nl_(std::move(nl)) {}
  ConntrackExemption(const ConntrackExemption&) = delete;
  ConntrackExemption& operator=(const ConntrackExemption&) = delete;
  // Closing the socket removes the table (owner flag).
  ~ConntrackExemption() = default;

 private:
  MnlSocketPtr nl_;
};

}  // namespace fwha::nft
