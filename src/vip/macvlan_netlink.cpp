// The virtual MAC links through rtnetlink (RTM_GETLINK / RTM_NEWLINK / RTM_DELLINK) with libmnl,
// one request at a time with its ACK, as for the addresses.
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <vector>

#include "fwha/mnl_socket.h"
#include "vip/virtual_mac.h"

namespace fwha::vip {
namespace {

struct LinkFacts {
  int ifindex = 0;
  int parent = 0;
  std::string kind;
  std::optional<MacAddress> mac;
  std::string alias;
};

int parse_linkinfo(const nlattr* a, void* data) {
  auto* kind = static_cast<std::string*>(data);
  if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0) {
    *kind = mnl_attr_get_str(a);
  }
  return MNL_CB_OK;
}

int parse_link_attr(const nlattr* a, void* data) {
  auto* f = static_cast<LinkFacts*>(data);
  switch (mnl_attr_get_type(a)) {
    case IFLA_LINK:
      if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) f->parent = static_cast<int>(mnl_attr_get_u32(a));
      break;
    case IFLA_ADDRESS:
      if (mnl_attr_get_payload_len(a) == 6) {
        MacAddress m;
        std::memcpy(m.data(), mnl_attr_get_payload(a), 6);
        f->mac = m;
      }
      break;
    case IFLA_LINKINFO:
      mnl_attr_parse_nested(a, parse_linkinfo, &f->kind);
      break;
    case IFLA_IFALIAS:
      if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0) f->alias = mnl_attr_get_str(a);
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

int on_link_reply(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type != RTM_NEWLINK) return MNL_CB_OK;
  auto* f = static_cast<LinkFacts*>(data);
  const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  f->ifindex = ifi->ifi_index;
  mnl_attr_parse(nlh, sizeof(ifinfomsg), parse_link_attr, f);
  return MNL_CB_OK;
}

class KernelLinkPort : public LinkPort {
 public:
  explicit KernelLinkPort(MnlSocketPtr nl) : nl_(std::move(nl)), buf_(MNL_SOCKET_BUFFER_SIZE) {}

  std::error_code ensure_macvlan(const std::string& name, int parent, const MacAddress& mac,
                                 Link& link, std::string& why) override {
    LinkFacts f;
    auto ec = get_link(name, f);
    if (ec && ec.value() != ENODEV) return ec;
    if (!ec) {
      if (f.kind != "macvlan" || f.parent != parent || f.mac != mac) {
        why = "a link of that name exists and is not this group's virtual MAC link (kind '" +
              f.kind + "'" + (f.mac ? ", address " + to_string(*f.mac) : std::string()) +
              "): rename it or change the group's vrid";
        return std::make_error_code(std::errc::file_exists);
      }
      link = {f.ifindex, true, f.alias};  // left by a fwhad that did not exit cleanly: ours
    } else {
      nlmsghdr* nlh = header(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
      mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
      mnl_attr_put_u32(nlh, IFLA_LINK, static_cast<uint32_t>(parent));
      mnl_attr_put(nlh, IFLA_ADDRESS, mac.size(), mac.data());
      nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
      mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "macvlan");
      nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
      // Private: nothing passes between macvlans of one parent; they are not a switch.
      mnl_attr_put_u32(nlh, IFLA_MACVLAN_MODE, MACVLAN_MODE_PRIVATE);
      mnl_attr_nest_end(nlh, data);
      mnl_attr_nest_end(nlh, info);
      if ((ec = transact(nlh, nullptr, nullptr))) return ec;
      if ((ec = get_link(name, f))) return ec;
      link = {f.ifindex, false, {}};
    }
    // No IPv6 link-local of its own (again on an adopted link: someone may have changed it):
    // both nodes' links have the same address, so the same EUI-64 link-local, and DAD would
    // fight over it at every takeover.
    nlmsghdr* nlh = header(RTM_NEWLINK, 0, link.ifindex);
    nlattr* af = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
    nlattr* inet6 = mnl_attr_nest_start(nlh, AF_INET6);
    mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
    mnl_attr_nest_end(nlh, inet6);
    mnl_attr_nest_end(nlh, af);
    if ((ec = transact(nlh, nullptr, nullptr)) && ec.value() != EAFNOSUPPORT) {
      remove(link.ifindex);  // IPv6 disabled is fine; anything else leaves nothing behind
      return ec;
    }
    return {};
  }

  std::error_code set_alias(int ifindex, const std::string& alias) override {
    nlmsghdr* nlh = header(RTM_NEWLINK, 0, ifindex);
    mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias.c_str());
    return transact(nlh, nullptr, nullptr);
  }

  std::error_code set_up(int ifindex, bool up) override {
    nlmsghdr* nlh = header(RTM_NEWLINK, 0, ifindex);
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = up ? IFF_UP : 0;
    return transact(nlh, nullptr, nullptr);
  }

  std::error_code remove(int ifindex) override {
    auto ec = transact(header(RTM_DELLINK, 0, ifindex), nullptr, nullptr);
    return ec.value() == ENODEV ? std::error_code{} : ec;
  }

 private:
  nlmsghdr* header(uint16_t type, uint16_t flags, int ifindex) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    nlh->nlmsg_seq = ++seq_;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    return nlh;
  }

  std::error_code get_link(const std::string& name, LinkFacts& f) {
    nlmsghdr* nlh = header(RTM_GETLINK, 0, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
    return transact(nlh, on_link_reply, &f);
  }

  std::error_code transact(nlmsghdr* nlh, mnl_cb_t on_reply, void* data) {
    return route_transact(nl_.get(), nlh, buf_, on_reply, data);
  }

  MnlSocketPtr nl_;
  std::vector<char> buf_;
  uint32_t seq_ = static_cast<uint32_t>(time(nullptr));
};

}  // namespace

std::unique_ptr<LinkPort> make_kernel_link_port(std::error_code& ec) {
  MnlSocketPtr nl = open_route_socket(ec);
  if (!nl) return nullptr;
  return std::make_unique<KernelLinkPort>(std::move(nl));
}

}  // namespace fwha::vip
