// Reads fwha.conf with toml++ and validates it into config::Config. Design: a reader walks the
// document table by table; every table lists its known keys, so a typo is reported as an
// unknown key with its line instead of being silently ignored (a misspelt "preempt" must not
// quietly leave preemption off). The first error stops parsing.
#include "config/config.h"

#include <algorithm>

#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace fwha::config {
namespace {

struct Failure {
  Error error;
};

class Reader {
 public:
  explicit Reader(std::string_view file) : file_(file) {}

  [[noreturn]] void fail(const toml::source_region& where, std::string key,
                         std::string message) const {
    throw Failure{Error{file_, static_cast<int>(where.begin.line), std::move(key),
                        std::move(message)}};
  }

  void check_known(const toml::table& t, const std::string& prefix,
                   std::initializer_list<std::string_view> known) const {
    for (auto&& [k, v] : t) {
      bool ok = false;
      for (auto name : known) ok = ok || k.str() == name;
      if (ok) continue;
      std::string list;
      for (auto name : known) list += (list.empty() ? "" : ", ") + std::string(name);
      fail(k.source(), join(prefix, k.str()), "unknown key (expected one of: " + list + ")");
    }
  }

  const toml::table& table(const toml::table& parent, const toml::source_region& parent_at,
                           std::string_view key, const std::string& prefix) const {
    const toml::node* n = parent.get(key);
    if (!n) fail(parent_at, join(prefix, key), "missing table [" + join(prefix, key) + "]");
    if (!n->is_table()) fail(n->source(), join(prefix, key), "expected a table");
    return *n->as_table();
  }

  std::string string(const toml::table& t, std::string_view key, const std::string& prefix,
                     const std::string* fallback = nullptr) const {
    const toml::node* n = t.get(key);
    if (!n) {
      if (fallback) return *fallback;
      fail(t.source(), join(prefix, key), "missing (expected a string)");
    }
    if (!n->is_string()) fail(n->source(), join(prefix, key), "expected a string");
    return n->as_string()->get();
  }

  int64_t integer(const toml::table& t, std::string_view key, const std::string& prefix,
                  int64_t lo, int64_t hi, std::optional<int64_t> fallback = {}) const {
    const toml::node* n = t.get(key);
    if (!n) {
      if (fallback) return *fallback;
      fail(t.source(), join(prefix, key), "missing (expected an integer " + range(lo, hi) + ")");
    }
    if (!n->is_integer()) {
      fail(n->source(), join(prefix, key), "expected an integer " + range(lo, hi));
    }
    int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) {
      fail(n->source(), join(prefix, key),
           "expected an integer " + range(lo, hi) + ", got " + std::to_string(v));
    }
    return v;
  }

  bool boolean(const toml::table& t, std::string_view key, const std::string& prefix,
               bool fallback) const {
    const toml::node* n = t.get(key);
    if (!n) return fallback;
    if (!n->is_boolean()) fail(n->source(), join(prefix, key), "expected true or false");
    return n->as_boolean()->get();
  }

  IpAddress address(const toml::table& t, std::string_view key, const std::string& prefix) const {
    std::string text = string(t, key, prefix);
    auto a = IpAddress::parse(text);
    if (!a) fail(t.get(key)->source(), join(prefix, key), "expected an IP address, got '" + text + "'");
    return *a;
  }

  static std::string join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

 private:
  static std::string range(int64_t lo, int64_t hi) {
    return std::to_string(lo) + ".." + std::to_string(hi);
  }
  std::string file_;
};

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string name_field(const Reader& r, const toml::table& t, std::string_view key,
                       const std::string& prefix) {
  std::string v = r.string(t, key, prefix);
  if (!valid_name(v)) {
    r.fail(t.get(key)->source(), Reader::join(prefix, key),
           "expected 1..64 characters of a-z A-Z 0-9 - _ ., got '" + v + "'");
  }
  return v;
}

VipInterface read_interface(const Reader& r, const toml::table& t, const std::string& prefix) {
  r.check_known(t, prefix, {"name", "peer_address", "vips"});
  VipInterface vi;
  vi.name = r.string(t, "name", prefix);
  if (vi.name.empty() || vi.name.size() > 15 || vi.name.find('/') != std::string::npos) {
    r.fail(t.get("name")->source(), prefix + ".name",
           "expected a Linux interface name (1..15 characters, no '/'), got '" + vi.name + "'");
  }
  vi.peer_address = r.address(t, "peer_address", prefix);
  // The family of peer_address picks the family of the adverts on this interface. IPv6
  // adverts go from link-local address to link-local address (RFC 5798 5.1.2.1): a global
  // peer_address would never match a received advert's source.
  if (vi.peer_address.family == Family::V6 && !vi.peer_address.is_ipv6_link_local()) {
    r.fail(t.get("peer_address")->source(), prefix + ".peer_address",
           "expected an IPv4 address or an IPv6 link-local address (fe80::/10, without %scope: "
           "the interface is the scope), got '" +
               vi.peer_address.to_string() +
               "': IPv6 adverts are sent from the interface's link-local address");
  }
  const toml::node* vips = t.get("vips");
  if (!vips) r.fail(t.source(), prefix + ".vips", "missing (expected a list of \"ADDR/LEN\")");
  const toml::array* arr = vips->as_array();
  if (!arr || arr->empty()) {
    r.fail(vips->source(), prefix + ".vips", "expected a non-empty list of \"ADDR/LEN\"");
  }
  for (const toml::node& item : *arr) {
    auto text = item.value<std::string>();
    auto p = text ? IpPrefix::parse(*text) : std::nullopt;
    if (!p) {
      r.fail(item.source(), prefix + ".vips",
             "expected an address with prefix length like \"192.0.2.1/24\" or "
             "\"fd00:1::1/64\", got " +
                 (text ? "'" + *text + "'" : std::string("a non-string")));
    }
    if (p->address == vi.peer_address) {
      r.fail(item.source(), prefix + ".vips", "a VIP must not be the peer's own address");
    }
    vi.vips.push_back(*p);
  }
  return vi;
}

// A tracked next-hop is pinged through the routing table: an address that never leaves the
// node, or names no single router, would make the node look degraded (or never).
bool unicast_beyond_the_link(const IpAddress& a) {
  const auto& b = a.bytes;
  if (a.family == Family::V4) {
    return b[0] != 0 && b[0] != 127 && b[0] < 224 && !(b[0] == 169 && b[1] == 254);
  }
  const bool unspecified_or_loopback =
      std::all_of(b.begin(), b.begin() + 15, [](uint8_t x) { return x == 0; }) && b[15] <= 1;
  const bool v4_mapped = std::all_of(b.begin(), b.begin() + 10, [](uint8_t x) { return x == 0; }) &&
                         b[10] == 0xFF && b[11] == 0xFF;
  return !unspecified_or_loopback && !v4_mapped && b[0] != 0xFF && !a.is_ipv6_link_local();
}

Group read_group(const Reader& r, const toml::table& t) {
  const std::string prefix = "group";
  r.check_known(t, prefix,
                {"name", "vrid", "priority", "advert_interval_cs", "preempt", "preempt_delay_s",
                 "virtual_mac", "track_next_hops", "track_interval_ms", "track_misses",
                 "interface"});
  Group g;
  g.name = name_field(r, t, "name", prefix);
  g.vrid = static_cast<uint8_t>(r.integer(t, "vrid", prefix, 1, 255));
  g.priority = static_cast<uint8_t>(r.integer(t, "priority", prefix, 1, 254, 100));
  g.advert_interval_cs =
      static_cast<uint16_t>(r.integer(t, "advert_interval_cs", prefix, 1, 4095, kDefaultAdvertIntervalCs));
  g.preempt = r.boolean(t, "preempt", prefix, false);
  g.preempt_delay_s =
      static_cast<uint32_t>(r.integer(t, "preempt_delay_s", prefix, 0, 3600, 0));
  g.virtual_mac = r.boolean(t, "virtual_mac", prefix, false);
  if (const toml::node* hops = t.get("track_next_hops")) {
    const toml::array* arr = hops->as_array();
    if (!arr || arr->size() > 8) {
      r.fail(hops->source(), "group.track_next_hops",
             "expected a list of at most 8 addresses like [\"198.51.100.254\"]");
    }
    for (const toml::node& item : *arr) {
      auto text = item.value<std::string>();
      auto a = text ? IpAddress::parse(*text) : std::nullopt;
      if (!a || !unicast_beyond_the_link(*a)) {
        r.fail(item.source(), "group.track_next_hops",
               "expected the unicast IPv4 or global IPv6 address of a router (not link-local, "
               "multicast, loopback, unspecified or IPv4-mapped), got " +
                   (text ? "'" + *text + "'" : std::string("a non-string")));
      }
      if (std::find(g.track_next_hops.begin(), g.track_next_hops.end(), *a) !=
          g.track_next_hops.end()) {
        r.fail(item.source(), "group.track_next_hops", "'" + *text + "' listed twice");
      }
      g.track_next_hops.push_back(*a);
    }
  }
  g.track_interval_ms =
      static_cast<uint32_t>(r.integer(t, "track_interval_ms", prefix, 100, 60000, 1000));
  g.track_misses = static_cast<uint32_t>(r.integer(t, "track_misses", prefix, 1, 100, 3));
  const toml::node* ifs = t.get("interface");
  if (!ifs) r.fail(t.source(), "group.interface", "missing (expected [[group.interface]] tables)");
  const toml::array* arr = ifs->as_array();
  if (!arr || arr->empty() || !arr->is_array_of_tables()) {
    r.fail(ifs->source(), "group.interface", "expected one or more [[group.interface]] tables");
  }
  std::set<std::string> names;
  std::set<IpAddress> vips;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& it = *arr->get(i)->as_table();
    std::string p = "group.interface[" + std::to_string(i) + "]";
    VipInterface vi = read_interface(r, it, p);
    if (!names.insert(vi.name).second) {
      r.fail(it.get("name")->source(), p + ".name", "interface '" + vi.name + "' listed twice");
    }
    for (const auto& v : vi.vips) {
      if (!vips.insert(v.address).second) {
        r.fail(it.get("vips")->source(), p + ".vips",
               "VIP " + v.address.to_string() + " listed twice");
      }
    }
    g.interfaces.push_back(std::move(vi));
  }
  return g;
}

Sync read_sync(const Reader& r, const toml::table& t) {
  const std::string prefix = "sync";
  r.check_known(t, prefix,
                {"local_address", "peer_address", "port", "conntrack", "reconcile_interval_s",
                 "event_buffer_kib", "event_coalesce_us", "event_hold_entries"});
  Sync s;
  s.local_address = r.address(t, "local_address", prefix);
  s.peer_address = r.address(t, "peer_address", prefix);
  if (s.local_address == s.peer_address) {
    r.fail(t.get("peer_address")->source(), "sync.peer_address",
           "must differ from sync.local_address");
  }
  if (s.local_address.family != s.peer_address.family) {
    r.fail(t.get("peer_address")->source(), "sync.peer_address",
           "must be of the same address family as sync.local_address");
  }
  s.port = static_cast<uint16_t>(r.integer(t, "port", prefix, 1, 65535, 7788));
  s.conntrack = r.boolean(t, "conntrack", prefix, true);
  s.reconcile_interval_s =
      static_cast<uint32_t>(r.integer(t, "reconcile_interval_s", prefix, 1, 3600, 30));
  s.event_buffer_kib =
      static_cast<uint32_t>(r.integer(t, "event_buffer_kib", prefix, 4, 1024 * 1024, 64 * 1024));
  s.event_coalesce_us = static_cast<uint32_t>(
      r.integer(t, "event_coalesce_us", prefix, 0, 100000, kDefaultEventCoalesceUs));
  s.event_hold_entries = static_cast<uint32_t>(
      r.integer(t, "event_hold_entries", prefix, 0, 64, kDefaultEventHoldEntries));
  return s;
}

Config read_config(const Reader& r, const toml::table& root) {
  r.check_known(root, "", {"node", "peer", "sync", "group"});
  Config c;
  const auto& node = r.table(root, root.source(), "node", "");
  r.check_known(node, "node",
                {"name", "control_socket", "realtime_priority", "election_cpu",
                 "notrack_own_traffic"});
  c.node_name = name_field(r, node, "name", "node");
  c.realtime_priority = static_cast<int>(
      r.integer(node, "realtime_priority", "node", 0, 99, kDefaultRealtimePriority));
  c.election_cpu = static_cast<int>(r.integer(node, "election_cpu", "node", -1, 1023, -1));
  c.notrack_own_traffic = r.boolean(node, "notrack_own_traffic", "node", true);
  const std::string default_socket = kDefaultControlSocket;
  c.control_socket = r.string(node, "control_socket", "node", &default_socket);
  if (c.control_socket.empty() || c.control_socket.front() != '/' ||
      c.control_socket.size() >= 108) {
    r.fail(node.get("control_socket")->source(), "node.control_socket",
           "expected an absolute path shorter than 108 characters");
  }
  const auto& peer = r.table(root, root.source(), "peer", "");
  r.check_known(peer, "peer", {"name"});
  c.peer_name = name_field(r, peer, "name", "peer");
  if (c.peer_name == c.node_name) {
    r.fail(peer.get("name")->source(), "peer.name", "must differ from node.name");
  }
  c.sync = read_sync(r, r.table(root, root.source(), "sync", ""));
  c.group = read_group(r, r.table(root, root.source(), "group", ""));
  return c;
}

}  // namespace

std::string Error::to_string() const {
  std::ostringstream out;
  out << file;
  if (line > 0) out << ":" << line;
  out << ": ";
  if (!key.empty()) out << key << ": ";
  out << message;
  return out.str();
}

Result parse(std::string_view text, std::string_view file_name) {
  Reader reader(file_name);
  try {
    toml::table root = toml::parse(text, file_name);
    return read_config(reader, root);
  } catch (const toml::parse_error& e) {
    return Error{std::string(file_name), static_cast<int>(e.source().begin.line), "",
                 "TOML syntax error: " + std::string(e.description())};
  } catch (const Failure& f) {
    return f.error;
  }
}

Result load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path, 0, "", "cannot open the file"};
  std::ostringstream buf;
  buf << in.rdbuf();
  if (buf.str().size() > 1024 * 1024) return Error{path, 0, "", "file larger than 1 MiB"};
  return parse(buf.str(), path);
}

}  // namespace fwha::config
