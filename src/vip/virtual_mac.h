// Optional virtual MAC (RFC 5798 7.3, keepalived's use_vmac): an interface's VIPs live on a
// macvlan link over it whose address is 00-00-5E-00-01-{VRID} (IPv4 adverts) or
// 00-00-5E-00-02-{VRID} (IPv6 adverts). The link is up on the Master only, so the VIPs'
// hardware address never changes: neighbours keep their ARP/ND entries across a failover, and
// the gratuitous ARP only moves the switches' forwarding entry.
//
// The link is behind LinkPort (macvlan_netlink.cpp is the kernel adapter); VirtualMacLink owns
// one such link for the daemon's lifetime and undoes what it changed when it goes.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "fwha/ip_address.h"

namespace fwha::vip {

using MacAddress = std::array<uint8_t, 6>;

MacAddress virtual_mac(uint8_t vrid, Family adverts);
std::string to_string(const MacAddress& mac);  // "00:00:5e:00:01:33"
// "vmac<vrid>-<position>": the group's n-th interface; short enough for IFNAMSIZ (at most
// "vmac255-99"), and without a dot, which sysctl(8)'s dotted names would read as a separator.
std::string virtual_mac_link_name(uint8_t vrid, size_t position);

class LinkPort {
 public:
  virtual ~LinkPort() = default;
  struct Link {
    int ifindex = 0;
    bool adopted = false;  // it was there already
    std::string alias;     // its IFLA_IFALIAS ("" when none)
  };
  // The macvlan link `name` over `parent` with address `mac`, without an IPv6 link-local
  // address of its own: created, or adopted when a macvlan of that name, parent and address
  // is there already (a killed fwhad leaves its link). Any other link of that name is an
  // error: it is someone else's.
  virtual std::error_code ensure_macvlan(const std::string& name, int parent, const MacAddress& mac,
                                         Link& link, std::string& why) = 0;
  // The alias keeps what we changed on the parent, for a fwhad started after a SIGKILL.
  virtual std::error_code set_alias(int ifindex, const std::string& alias) = 0;
  virtual std::error_code set_up(int ifindex, bool up) = 0;
  virtual std::error_code remove(int ifindex) = 0;
};

// rtnetlink (libmnl).
std::unique_ptr<LinkPort> make_kernel_link_port(std::error_code& ec);

// One virtual MAC link, from open() until destruction, which deletes it and puts the parent's
// ARP sysctls back as they were before fwhad first changed them (read from the link's alias
// when a killed fwhad left the link and its changes behind).
class VirtualMacLink {
 public:
  // Also, on the parent (net.ipv4.conf.<parent>.*), raises arp_ignore to 1: it must not answer
  // ARP for the VIPs with its own MAC (the macvlan's copy of the request answers with the
  // virtual one); and arp_announce to 2: its own ARP requests (for SNATed packets from a VIP)
  // must not carry a VIP as sender, or neighbours would map the VIP to the parent's MAC. On
  // the link itself: arp_ignore 1 (it answers for the VIPs only, not for the node's own
  // addresses) and rp_filter 2 (packets to the VIPs arrive on it while the route back is via
  // the parent; strict filtering would drop them). `sysctl_root` is /proc/sys except in tests.
  static std::unique_ptr<VirtualMacLink> open(LinkPort& links, const std::string& name,
                                              const std::string& parent_name, int parent_ifindex,
                                              const MacAddress& mac, std::string& what_failed,
                                              std::error_code& ec,
                                              const std::filesystem::path& sysctl_root = "/proc/sys");
  struct Key {  // only open() makes one
   private:
    Key() = default;
    friend class VirtualMacLink;
  };
  struct Restore {  // a parent sysctl we changed, and its value before
    std::filesystem::path path;
    std::string value;
  };
  VirtualMacLink(Key, LinkPort& links, std::string name, int ifindex, const MacAddress& mac,
                 std::vector<Restore> restore)
      : links_(links), name_(std::move(name)), ifindex_(ifindex), mac_(mac),
        restore_(std::move(restore)) {}
  ~VirtualMacLink();
  VirtualMacLink(const VirtualMacLink&) = delete;
  VirtualMacLink& operator=(const VirtualMacLink&) = delete;

  int ifindex() const { return ifindex_; }
  const std::string& name() const { return name_; }
  const MacAddress& mac() const { return mac_; }
  std::error_code set_up(bool up) { return links_.set_up(ifindex_, up); }

 private:
  LinkPort& links_;
  std::string name_;
  int ifindex_;
  MacAddress mac_;
  std::vector<Restore> restore_;
};

}  // namespace fwha::vip
