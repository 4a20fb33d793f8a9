// VIP addresses through rtnetlink (RTM_NEWADDR / RTM_DELADDR) with libmnl. One request at a
// time with an ACK: a group holds a handful of VIPs and we must know each one landed.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <vector>

#include "fwha/mnl_socket.h"
#include "vip/address_port.h"
#include "vip/gratuitous_arp.h"
#include "util/log.h"
#include "vip/neighbour_advert.h"

namespace fwha::vip {
namespace {

class KernelAddressPort : public AddressPort {
 public:
  KernelAddressPort(MnlSocketPtr nl, UniqueFd arp, UniqueFd na)
      : nl_(std::move(nl)), arp_(std::move(arp)), na_(std::move(na)) {}

  std::error_code add(int ifindex, const IpPrefix& prefix) override {
    auto ec = request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, prefix);
    if (ec && ec.value() != EEXIST) return ec;
    if (prefix.address.family == Family::V6) wait_until_local(prefix.address);
    return {};
  }

  std::error_code remove(int ifindex, const IpPrefix& prefix) override {
    auto ec = request(RTM_DELADDR, 0, ifindex, prefix);
    if (ec.value() == EADDRNOTAVAIL || ec.value() == ENOENT || ec.value() == ENODEV) return {};
    return ec;
  }

  std::error_code announce(int ifindex, const IpAddress& address) override {
    return address.family == Family::V4 ? send_gratuitous_arp(arp_.get(), ifindex, address)
                         : na_ ? send_unsolicited_na(na_.get(), ifindex, address)
                               : std::make_error_code(std::errc::address_family_not_supported);
  }

 private:
  std::error_code request(uint16_t type, uint16_t flags, int ifindex, const IpPrefix& prefix) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    nlh->nlmsg_seq = ++seq_;
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    const bool v4 = prefix.address.family == Family::V4;
    ifa->ifa_family = v4 ? AF_INET : AF_INET6;
    ifa->ifa_prefixlen = prefix.length;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = static_cast<unsigned>(ifindex);
    const auto len = static_cast<uint16_t>(prefix.address.size());
    mnl_attr_put(nlh, IFA_LOCAL, len, prefix.address.bytes.data());
    mnl_attr_put(nlh, IFA_ADDRESS, len, prefix.address.bytes.data());
    if (!v4) mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);  // a VIP must be usable at once
    return route_transact(nl_.get(), nlh, buf);
  }

  // The kernel adds an IPv6 address at once but its local route from a work queue, a little
  // later. In between the address already serves as a source (the new Master's first
  // Neighbour Solicitation for a forwarded, SNATed packet goes out from the VIP) while
  // packets to it, the answer to that solicitation included, are not delivered: the node
  // then waits the 1 s retransmission timer, and traffic with it (seen in lab_switchover_ipv6,
  // 1 run in ~13). So the VIPs are announced only once the address routes locally.
  void wait_until_local(const IpAddress& address) {
    const timespec pause{.tv_sec = 0, .tv_nsec = 50'000};
    const auto start = std::chrono::steady_clock::now();
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    for (int i = 0; i < 1000; ++i) {  // 50 ms at most; 125-200 us measured in the lab
      if (routes_locally(address, buf)) {
        if (i > 0) {
          log::info("vip", address.to_string() + " routes locally " +
                               std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::steady_clock::now() - start)
                                                  .count()) +
                               " us after it was added");
        }
        return;
      }
      nanosleep(&pause, nullptr);
    }
    log::warning("vip", address.to_string() +
                            " added but not routed locally after 50 ms: announcing it anyway");
  }

  bool routes_locally(const IpAddress& address, std::vector<char>& buf) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETROUTE;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rtm->rtm_family = AF_INET6;
    rtm->rtm_dst_len = 128;
    mnl_attr_put(nlh, RTA_DST, 16, address.bytes.data());
    bool local = false;
    auto on_route = [](const nlmsghdr* reply, void* data) {
      if (reply->nlmsg_type == RTM_NEWROUTE) {
        const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(reply));
        *static_cast<bool*>(data) = r->rtm_type == RTN_LOCAL;
      }
      return MNL_CB_OK;
    };
    return !route_transact(nl_.get(), nlh, buf, on_route, &local) && local;
  }

  MnlSocketPtr nl_;
  UniqueFd arp_;  // announce sockets, open for the daemon's life (gratuitous_arp.h: why)
  UniqueFd na_;
  uint32_t seq_ = static_cast<uint32_t>(time(nullptr));
};

}  // namespace

std::unique_ptr<AddressPort> make_kernel_address_port(std::error_code& ec) {
  MnlSocketPtr nl = open_route_socket(ec);
  if (!nl) return nullptr;
  UniqueFd arp = open_arp_socket(ec);
  if (!arp) return nullptr;
  UniqueFd na = open_na_socket(ec);
  if (!na && ec.value() != EAFNOSUPPORT) return nullptr;  // no IPv6 in the kernel: no IPv6 VIPs
  ec.clear();
  return std::make_unique<KernelAddressPort>(std::move(nl), std::move(arp), std::move(na));
}

}  // namespace fwha::vip
