#include "vip/virtual_mac.h"

#include <cstdio>
#include <fstream>

#include "util/log.h"

namespace fwha::vip {
namespace {

// sysctl names an interface with dots as a path: eth0.100 is net/ipv4/conf/eth0/100.
std::filesystem::path arp_ignore_path(const std::filesystem::path& root, std::string ifname) {
  for (char& c : ifname) {
    if (c == '.') c = '/';
  }
  return root / "net/ipv4/conf" / ifname / "arp_ignore";
}

std::optional<std::string> read_value(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string v;
  if (!(in >> v)) return std::nullopt;
  return v;
}

bool write_value(const std::filesystem::path& p, const std::string& v) {
  std::ofstream out(p);
  out << v << '\n';
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

MacAddress virtual_mac(uint8_t vrid, Family adverts) {
  return {0x00, 0x00, 0x5e, 0x00, static_cast<uint8_t>(adverts == Family::V6 ? 0x02 : 0x01), vrid};
}

std::string to_string(const MacAddress& mac) {
  char s[18];
  std::snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return s;
}

std::string virtual_mac_link_name(uint8_t vrid, size_t position) {
  return "vmac" + std::to_string(vrid) + "-" + std::to_string(position);
}

std::unique_ptr<VirtualMacLink> VirtualMacLink::open(LinkPort& links, const std::string& name,
                                                     const std::string& parent_name,
                                                     int parent_ifindex, const MacAddress& mac,
                                                     std::string& what_failed,
                                                     std::error_code& ec,
                                                     const std::filesystem::path& sysctl_root) {
  int ifindex = 0;
  std::string why;
  ec = links.ensure_macvlan(name, parent_ifindex, mac, ifindex, why);
  if (ec) {
    what_failed = "virtual MAC link " + name + " over " + parent_name + (why.empty() ? "" : " (" + why + ")");
    return nullptr;
  }
  // Down until this node is Master (a link adopted from a killed fwhad may be up).
  if ((ec = links.set_up(ifindex, false))) {
    what_failed = "setting virtual MAC link " + name + " down";
    links.remove(ifindex);
    return nullptr;
  }
  const auto path = arp_ignore_path(sysctl_root, parent_name);
  std::optional<std::string> was = read_value(path);
  if (!was) {
    ec = std::make_error_code(std::errc::no_such_file_or_directory);
    what_failed = "reading " + path.string();
    links.remove(ifindex);
    return nullptr;
  }
  if (*was == "0") {
    if (!write_value(path, "1")) {
      ec = std::make_error_code(std::errc::permission_denied);
      what_failed = "writing 1 to " + path.string();
      links.remove(ifindex);
      return nullptr;
    }
    log::info("vip", parent_name + ": arp_ignore 0 -> 1 while " + name +
                         " carries its VIPs (put back at exit)");
  } else {
    was.reset();  // 1 or stricter already: leave it as the operator set it
  }
  log::info("vip", "virtual MAC link " + name + " (" + to_string(mac) + ") over " + parent_name);
  return std::make_unique<VirtualMacLink>(Key{}, links, name, ifindex, mac, path, std::move(was));
}

VirtualMacLink::~VirtualMacLink() {
  if (auto ec = links_.remove(ifindex_)) {
    log::warning("vip", "deleting virtual MAC link " + name_ + " failed: " + ec.message());
  }
  if (arp_ignore_was_ && !write_value(arp_ignore_, *arp_ignore_was_)) {
    log::warning("vip", "could not put " + arp_ignore_.string() + " back to " + *arp_ignore_was_);
  }
}

}  // namespace fwha::vip
