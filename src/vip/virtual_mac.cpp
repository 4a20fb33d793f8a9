#include "vip/virtual_mac.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "util/log.h"

namespace fwha::vip {
namespace {

// /proc/sys names an interface as it is, dots included (sysctl(8) is what turns them into
// slashes).
std::filesystem::path conf(const std::filesystem::path& root, const std::string& ifname,
                           const char* key) {
  return root / "net/ipv4/conf" / ifname / key;
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

std::error_code last_error(std::errc fallback) {
  return errno != 0 ? std::error_code(errno, std::generic_category())
                    : std::make_error_code(fallback);
}

// The alias records the parent's values before our changes: "fwha: arp_ignore=0 arp_announce=0".
constexpr const char* kAliasPrefix = "fwha:";

std::optional<std::string> from_alias(const std::string& alias, const std::string& key) {
  if (alias.rfind(kAliasPrefix, 0) != 0) return std::nullopt;
  const auto at = alias.find(" " + key + "=");
  if (at == std::string::npos) return std::nullopt;
  const auto begin = at + key.size() + 2;
  const auto end = alias.find(' ', begin);
  return alias.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
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
  LinkPort::Link link;
  std::string why;
  ec = links.ensure_macvlan(name, parent_ifindex, mac, link, why);
  if (ec) {
    what_failed = "virtual MAC link " + name + " over " + parent_name +
                  (why.empty() ? "" : " (" + why + ")");
    return nullptr;
  }
  auto fail = [&](std::error_code e, std::string what) {
    ec = e;
    what_failed = std::move(what);
    links.remove(link.ifindex);  // nothing half-made stays behind
    return nullptr;
  };
  // Down until this node is Master (a link adopted from a killed fwhad may be up).
  if (auto e = links.set_up(link.ifindex, false)) return fail(e, "setting " + name + " down");

  // The parent: at least arp_ignore 1 and arp_announce 2; what it was before goes back at
  // exit. After a SIGKILL the values are already ours: the alias says what they were.
  struct Wanted {
    const char* key;
    int at_least;
  };
  std::vector<Restore> restore;
  std::string alias = kAliasPrefix;
  for (const Wanted w : {Wanted{"arp_ignore", 1}, Wanted{"arp_announce", 2}}) {
    const auto path = conf(sysctl_root, parent_name, w.key);
    errno = 0;
    const auto now = read_value(path);
    if (!now) return fail(last_error(std::errc::io_error), "reading " + path.string());
    const std::string before =
        link.adopted ? from_alias(link.alias, w.key).value_or(*now) : *now;
    alias += " " + std::string(w.key) + "=" + before;
    if (std::atoi(before.c_str()) != std::atoi(now->c_str()) || std::atoi(now->c_str()) < w.at_least) {
      restore.push_back({path, before});
    }
    if (std::atoi(now->c_str()) < w.at_least) {
      errno = 0;
      if (!write_value(path, std::to_string(w.at_least))) {
        return fail(last_error(std::errc::io_error),
                    "writing " + std::to_string(w.at_least) + " to " + path.string());
      }
      log::info("vip", parent_name + ": " + w.key + " " + *now + " -> " +
                           std::to_string(w.at_least) + " while " + name +
                           " carries its VIPs (put back at exit)");
    }
  }
  if (auto e = links.set_alias(link.ifindex, alias)) return fail(e, "setting the alias of " + name);
  // The link itself is ours: no need to restore.
  for (const auto& [key, value] : {std::pair{"arp_ignore", "1"}, std::pair{"rp_filter", "2"}}) {
    const auto path = conf(sysctl_root, name, key);
    errno = 0;
    if (!write_value(path, value)) {
      return fail(last_error(std::errc::io_error),
                  std::string("writing ") + value + " to " + path.string());
    }
  }
  log::info("vip", std::string(link.adopted ? "adopted" : "created") + " virtual MAC link " +
                       name + " (" + to_string(mac) + ") over " + parent_name);
  return std::make_unique<VirtualMacLink>(Key{}, links, name, link.ifindex, mac,
                                          std::move(restore));
}

VirtualMacLink::~VirtualMacLink() {
  if (auto ec = links_.remove(ifindex_)) {
    log::warning("vip", "deleting virtual MAC link " + name_ + " failed: " + ec.message());
  }
  for (const auto& r : restore_) {
    if (!write_value(r.path, r.value)) {
      log::warning("vip", "could not put " + r.path.string() + " back to " + r.value);
    }
  }
}

}  // namespace fwha::vip
