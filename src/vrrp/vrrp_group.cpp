#include "vrrp/vrrp_group.h"

#include <cerrno>
#include <string>

#include "util/log.h"
#include "vrrp/advert_admission.h"
#include "vrrp/vrrp_packet.h"

namespace fwha::vrrp {
namespace {

// Gratuitous ARP is repeated: a single frame can be lost, and a neighbour that had no entry
// yet may miss the first. Delays after the first one.
constexpr std::chrono::milliseconds kGarpRepeat[] = {std::chrono::milliseconds(100),
                                                     std::chrono::milliseconds(500),
                                                     std::chrono::milliseconds(1000)};


Config machine_config(const config::Group& g) {
  Config c;
  c.priority = g.priority;
  c.advert_interval_cs = g.advert_interval_cs;
  c.preempt = g.preempt;
  c.preempt_delay = std::chrono::seconds(g.preempt_delay_s);
  return c;  // primary_address is filled in open(), once the interfaces are known
}

}  // namespace

VrrpGroup::VrrpGroup(boost::asio::io_context& io, const config::Group& config,
                     vip::AddressPort& addresses, StateChange on_change)
    : io_(io),
      config_(config),
      addresses_(addresses),
      on_change_(std::move(on_change)),
      machine_(machine_config(config)),
      adver_timer_(io),
      master_down_timer_(io),
      garp_timer_(io),
      preempt_timer_(io) {
  for (const auto& i : config_.interfaces)
    for (const auto& v : i.vips) vip_addresses_.push_back(v.address);
}

VrrpGroup::~VrrpGroup() {
  for (auto& i : interfaces_) {
    i.socket.reset();
    i.socket6.reset();
  }
}

std::error_code VrrpGroup::open(std::string& what_failed) {
  std::vector<IpAddress> vips;
  for (const auto& i : config_.interfaces) {
    for (const auto& v : i.vips) vips.push_back(v.address);
  }
  for (const auto& ic : config_.interfaces) {
    Interface iface;
    iface.config = &ic;
    if (ic.peer_address.family == Family::V6) {  // IPv6 adverts on this interface
      if (auto ec = lookup_link_local(ic.name, vips, iface.info)) {
        what_failed = "interface " + ic.name + " (needs to exist and have an IPv6 link-local "
                      "address: its peer_address is IPv6)";
        return ec;
      }
      iface.socket6 = std::make_unique<VrrpSocket6>(io_, ic.name, iface.info.ifindex,
                                                    iface.info.primary);
      iface.vips_on = iface.info.ifindex;
      interfaces_.push_back(std::move(iface));
      continue;
    }
    if (auto ec = lookup_interface(ic.name, vips, iface.info)) {
      what_failed = "interface " + ic.name + " (needs to exist and have an IPv4 address)";
      return ec;
    }
    iface.socket = std::make_unique<VrrpSocket>(io_, ic.name, iface.info.ifindex,
                                                iface.info.primary);
    iface.vips_on = iface.info.ifindex;
    interfaces_.push_back(std::move(iface));
  }
  for (auto& iface : interfaces_) {
    Interface* self = &iface;
    std::error_code ec;
    if (iface.socket6) {
      ec = iface.socket6->open([this, self](std::span<const uint8_t> v, const Ipv6Envelope& e) {
        on_packet(*self, parse_ipv6(v, e));
      });
    } else {
      ec = iface.socket->open(
          [this, self](std::span<const uint8_t> p) { on_packet(*self, parse_ipv4(p)); });
    }
    if (ec) {
      what_failed = "VRRP socket on " + iface.config->name;
      return ec;
    }
  }
  if (config_.virtual_mac) {
    if (auto ec = open_virtual_macs(what_failed)) return ec;
  }
  // The tie-break (RFC 5798 6.4.3) compares primary addresses; we use the first interface's
  // (IPv4, or link-local with IPv6 adverts), and on_packet() hands the machine the peer's
  // address on that same interface, whichever interface the advert came on.
  Config c = machine_config(config_);
  c.primary_address = interfaces_.front().info.primary;
  c.preempt_waits_for_state = preempt_waits_for_state_;
  machine_ = StateMachine(c);
  for (auto& iface : interfaces_) iface.carrier = LinkMonitor::carrier(iface.config->name);
  links_ = std::make_unique<LinkMonitor>(io_);
  if (auto ec = links_->open([this](int ifindex, bool up) { on_link(ifindex, up); })) {
    what_failed = "rtnetlink link monitor";
    return ec;
  }
  return {};
}

void VrrpGroup::start() {
  post(Startup{});
  for (const auto& iface : interfaces_) {
    if (!iface.carrier) {
      log::warning("vrrp", "group=" + config_.name + " interface " + iface.config->name +
                               " has no carrier at start: Fault until it has");
    }
  }
  if (interfaces_without_carrier() > 0) post(LinkDown{});
}

size_t VrrpGroup::interfaces_without_carrier() const {
  size_t n = 0;
  for (const auto& iface : interfaces_) n += iface.carrier ? 0 : 1;
  return n;
}

// Any monitored interface without carrier means this node cannot serve the group (its VIPs
// on that link would be unreachable): Fault at once, and back once every one has carrier.
void VrrpGroup::on_link(int ifindex, bool carrier) {
  const size_t before = interfaces_without_carrier();
  for (auto& iface : interfaces_) {
    if (ifindex == -1) {  // events were lost: read every interface again
      iface.carrier = LinkMonitor::carrier(iface.config->name);
    } else if (iface.info.ifindex == ifindex && iface.carrier != carrier) {
      iface.carrier = carrier;
      log::notice("vrrp", "group=" + config_.name + " interface " + iface.config->name +
                              (carrier ? " has carrier again" : " lost carrier"));
    }
  }
  const size_t after = interfaces_without_carrier();
  if (machine_.state() == State::Initialize) return;  // start() looks at carrier itself
  if (before == 0 && after > 0) post(LinkDown{});
  if (before > 0 && after == 0) post(LinkUp{});
}
void VrrpGroup::shutdown() { post(Shutdown{}); }

// How long the peer waits for our adverts before it takes over: its Master_Down_Interval,
// 3 intervals + its Skew_Time. Its priority is known from the sync Hello; without it, 3
// intervals (the least any Backup waits), so a stall that may have let it take over counts.
std::chrono::microseconds VrrpGroup::peer_master_down_interval() const {
  const int64_t interval_us = 10000 * int64_t{config_.advert_interval_cs};
  const int64_t skew_us = peer_priority_ ? (256 - int64_t{*peer_priority_}) * interval_us / 256 : 0;
  return std::chrono::microseconds(3 * interval_us + skew_us);
}

void VrrpGroup::post(const Event& event) {
  if (takeover_pending_) {
    held_events_.push_back(event);
    return;
  }
  if (probing_stall_) {  // reading what queued up while we were not running
    if (const auto* a = std::get_if<AdvertReceived>(&event); a && a->priority != 0) {
      peer_took_over_ = true;  // a Backup sends no adverts: the peer is Master
    }
    held_events_.push_back(event);
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  // A healthy Master handles its Adver_Timer every interval; a gap as long as the peer's
  // Master_Down_Interval means the peer may have taken over meanwhile.
  if (machine_.state() == State::Master && last_event_at_ &&
      now - *last_event_at_ > peer_master_down_interval()) {
    resume_after_stall(now - *last_event_at_);
  }
  last_event_at_ = now;
  handle(event);
}

// The peer took over only if it ran while we did not: then its adverts as Master are queued
// in our sockets. If the whole machine stalled (a VM paused; both nodes of the lab share one)
// there are none, and stepping down would be a false role change.
void VrrpGroup::resume_after_stall(std::chrono::steady_clock::duration gap) {
  const auto ms = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(gap).count());
  probing_stall_ = true;
  peer_took_over_ = false;
  for (auto& iface : interfaces_) {
    if (iface.socket6) {
      iface.socket6->drain_now();
    } else {
      iface.socket->drain_now();
    }
  }
  probing_stall_ = false;
  auto queued = std::move(held_events_);
  held_events_.clear();
  if (peer_took_over_) {
    ++counters_.stalls;
    log::warning("vrrp", "group=" + config_.name + " did not run for " + ms +
                             " ms (stopped or starved) and the peer has taken over: stepping "
                             "down");
    handle(ResumedAfterStall{});
  } else {
    ++counters_.stalls_survived;
    log::warning("vrrp", "group=" + config_.name + " did not run for " + ms +
                             " ms, but the peer did not take over meanwhile: still Master");
  }
  for (const auto& e : queued) handle(e);
}

void VrrpGroup::handle(const Event& event) {
  const State before = machine_.state();
  auto actions = machine_.handle(event);
  const State after = machine_.state();
  if (before != after) {
    ++counters_.transitions;
    state_since_ = std::chrono::steady_clock::now();
    log::notice("vrrp", "group=" + config_.name + " vrid=" + std::to_string(config_.vrid) + " " +
                            to_string(before) + " -> " + to_string(after) +
                            " reason=" + to_string(machine_.last_reason()) +
                            " event=" + event_name(event));
  }
  // A handover's state is complete by construction (its barrier came after every entry);
  // an address owner at start-up has nothing to wait for.
  const bool lost_master = after == State::Master && before == State::Backup &&
                           machine_.last_reason() != Reason::HandoverReceived;
  if (lost_master && before_takeover_) {
    takeover_pending_ = true;
    takeover_actions_ = std::move(actions);
    before_takeover_([this] { finish_takeover(); });
    return;
  }
  for (const auto& a : actions) perform(a);
  if (before != after && on_change_) on_change_(before, after, machine_.last_reason());
}

void VrrpGroup::finish_takeover() {
  if (!takeover_pending_) return;
  takeover_pending_ = false;
  auto actions = std::move(takeover_actions_);
  for (const auto& a : actions) perform(a);
  if (on_change_) on_change_(State::Backup, State::Master, machine_.last_reason());
  auto held = std::move(held_events_);
  held_events_.clear();
  for (const auto& e : held) post(e);
}

void VrrpGroup::perform(const Action& action) {
  std::visit(
      [this](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, SendAdvert>) {
          send_adverts(a.priority);
        } else if constexpr (std::is_same_v<T, StartAdverTimer>) {
          arm(adver_timer_, a.after, AdverTimerExpired{});
        } else if constexpr (std::is_same_v<T, StartMasterDownTimer>) {
          arm(master_down_timer_, a.after, MasterDownTimerExpired{});
        } else if constexpr (std::is_same_v<T, CancelAdverTimer>) {
          cancel(adver_timer_);
        } else if constexpr (std::is_same_v<T, CancelMasterDownTimer>) {
          cancel(master_down_timer_);
        } else if constexpr (std::is_same_v<T, AddVips>) {
          set_vips(true);
        } else if constexpr (std::is_same_v<T, RemoveVips>) {
          cancel(garp_timer_);
          set_vips(false);
        } else if constexpr (std::is_same_v<T, StartPreemptDelayTimer>) {
          arm(preempt_timer_, a.after, PreemptDelayExpired{});
        } else if constexpr (std::is_same_v<T, SendGratuitousArp>) {
          announce_vips(static_cast<int>(std::size(kGarpRepeat)));
        }
      },
      action);
}

void VrrpGroup::arm(Timer& timer, std::chrono::microseconds after, Event on_expiry) {
  const uint64_t generation = ++timer.generation;
  timer.timer.expires_after(after);
  timer.timer.async_wait([this, &timer, generation, on_expiry](boost::system::error_code ec) {
    if (ec || generation != timer.generation) return;
    // A preempting Backup discards the Master's adverts on purpose: no grace for them.
    if (std::holds_alternative<MasterDownTimerExpired>(on_expiry) && !machine_.preempting() &&
        (late_takeover_grace(timer) || alive_elsewhere_grace())) {
      return;
    }
    post(on_expiry);
  });
}

// Three: the Master's adverts may be late by a few intervals on a loaded machine, but a
// Master that stopped advertising for good while its sync thread runs (a wedged election
// loop) must still be replaced within Master_Down_Interval + 3 intervals.
constexpr int kMaxAliveGraces = 3;

bool VrrpGroup::alive_elsewhere_grace() {
  if (machine_.state() != State::Backup || !alive_elsewhere_ || alive_graces_ >= kMaxAliveGraces ||
      !alive_elsewhere_()) {
    return false;
  }
  ++alive_graces_;
  if (log::should_log(++counters_.alive_graces)) {
    log::warning("vrrp", "group=" + config_.name + " no advert for a Master_Down_Interval, but "
                             "the Master still speaks on the sync link: one more interval");
  }
  const auto interval = std::chrono::microseconds(10000 * int64_t{config_.advert_interval_cs});
  arm(master_down_timer_, interval, MasterDownTimerExpired{});
  return true;
}

// A Master_Down_Timer that fires much later than its deadline means this node was not
// running (its process stopped or starved, the VM paused): the silence it measured is partly
// its own, and the Master's adverts of the last moments may be queued, not missing. Taking
// over now would be a false takeover; wait one more interval + Skew_Time for them instead.
// A Master that really is gone stays silent, and we take over then.
bool VrrpGroup::late_takeover_grace(Timer& timer) {
  const auto late = std::chrono::steady_clock::now() - timer.timer.expiry();
  const auto interval = std::chrono::microseconds(10000 * int64_t{config_.advert_interval_cs});
  // A quarter interval (1 ms at least): on time is within ~0.1 ms here; later than that, the
  // Master's advert that was due meanwhile may be just behind this expiry.
  const auto threshold = std::max<std::chrono::microseconds>(interval / 4,
                                                            std::chrono::microseconds(1000));
  // Only with a Master heard before: a node that never heard one (start-up, alone) takes over
  // as usual, so the election at start-up stays what the priorities say.
  if (machine_.state() != State::Backup || late <= threshold || grace_given_ ||
      !last_peer_advert_) {
    return false;
  }
  grace_given_ = true;
  ++counters_.late_timer_graces;
  log::warning("vrrp", "group=" + config_.name + " Master_Down_Timer fired " +
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              late)
                                              .count()) +
                           " ms late (this node was not running): one more interval before "
                           "taking over");
  arm(master_down_timer_, interval + machine_.skew_time(), MasterDownTimerExpired{});
  return true;
}

void VrrpGroup::cancel(Timer& timer) {
  ++timer.generation;
  timer.timer.cancel();
}

void VrrpGroup::send_adverts(uint8_t priority) {
  for (auto& iface : interfaces_) {
    Advert advert;
    advert.vrid = config_.vrid;
    advert.priority = priority;
    advert.max_adver_interval_cs = config_.advert_interval_cs;
    // An advert lists the VIPs of its family (RFC 5798 5.2.9); the others move with the group.
    const Family family = iface.socket6 ? Family::V6 : Family::V4;
    for (const auto& v : iface.config->vips) {
      if (v.address.family == family) advert.addresses.push_back(v.address);
    }
    const auto ec =
        iface.socket6
            ? iface.socket6->send(encode_ipv6(advert, iface.info.primary, vrrp_multicast_v6()))
            : iface.socket->send(
                  encode_ipv4(advert, iface.info.primary, IpAddress::v4(kVrrpMulticastV4)));
    if (ec) {
      // Every interval, on every interface, for as long as the cause lasts: rate-limited.
      if (log::should_log(++counters_.advert_send_errors)) {
        log::error("vrrp", "advert on " + iface.config->name + " failed: " + ec.message() +
                               (ec.value() == EPERM
                                    ? " (dropped by netfilter on the way out: a rule in an output "
                                      "chain, or a full conntrack table, nf_conntrack_max); the "
                                      "peer does not hear this node"
                                    : ""));
      }
    } else {
      ++counters_.adverts_sent;
    }
  }
}

std::error_code VrrpGroup::open_virtual_macs(std::string& what_failed) {
  if (!links_port_) {
    what_failed = "virtual MAC links (no link port given)";
    return std::make_error_code(std::errc::invalid_argument);
  }
  for (size_t k = 0; k < interfaces_.size(); ++k) {
    Interface& iface = interfaces_[k];
    const Family adverts = iface.socket6 ? Family::V6 : Family::V4;
    std::error_code ec;
    iface.vmac = vip::VirtualMacLink::open(*links_port_, vip::virtual_mac_link_name(config_.vrid, k),
                                           iface.config->name, iface.info.ifindex,
                                           vip::virtual_mac(config_.vrid, adverts), what_failed,
                                           ec);
    if (!iface.vmac) return ec;
    // RFC 5798 7.3: adverts leave with the virtual MAC as source, so the switches keep the
    // Master's port for it between gratuitous ARPs. (IPv6 adverts stay on the parent: their
    // source is its link-local address, which the virtual MAC link does not have.)
    if (iface.socket) {
      if (auto sec = iface.socket->send_via(iface.vmac->name())) {
        what_failed = "VRRP send socket on " + iface.vmac->name();
        return sec;
      }
    }
  }
  return {};
}

// A virtual MAC link is up before its VIPs are added and down after they are removed, so a
// Backup's link neither answers ARP for them nor sends with their MAC. A link that will not
// come up does not cost the service: its VIPs go on the interface itself, with its own MAC
// (the gratuitous ARP tells the neighbours), and the error is logged and counted. Removal
// clears both places: a killed fwhad may have left VIPs on either.
void VrrpGroup::set_vips(bool present) {
  for (auto& iface : interfaces_) {
    if (present) {
      iface.vips_on = iface.info.ifindex;
      if (iface.vmac) {
        if (auto ec = iface.vmac->set_up(true)) {
          ++counters_.vip_errors;
          log::error("vip", "setting " + iface.vmac->name() + " up failed: " + ec.message() +
                                "; its VIPs go on " + iface.config->name + " with its own MAC");
        } else {
          iface.vips_on = iface.vmac->ifindex();
        }
      }
    }
    for (const auto& v : iface.config->vips) {
      std::error_code ec;
      if (present) {
        ec = addresses_.add(iface.vips_on, v);
      } else {
        ec = addresses_.remove(iface.info.ifindex, v);
        if (iface.vmac) {
          if (auto vec = addresses_.remove(iface.vmac->ifindex(), v)) ec = vec;
        }
      }
      if (ec) {
        ++counters_.vip_errors;
        log::error("vip", std::string(present ? "adding " : "removing ") + v.to_string() +
                              " on " + iface.config->name + " failed: " + ec.message());
      }
    }
    if (!present && iface.vmac) {
      if (auto ec = iface.vmac->set_up(false)) {
        ++counters_.vip_errors;
        log::error("vip", "setting " + iface.vmac->name() + " down failed: " + ec.message());
      }
    }
  }
  log::info("vip", std::string(present ? "VIPs added" : "VIPs removed") + " group=" +
                       config_.name);
}

void VrrpGroup::announce_vips(int repeats_left) {
  for (const auto& iface : interfaces_) {
    for (const auto& v : iface.config->vips) {
      if (auto ec = addresses_.announce(iface.vips_on, v.address)) {
        log::warning("vip", "announcing " + v.address.to_string() + " on " +
                                iface.config->name + " failed: " + ec.message());
      }
    }
  }
  if (repeats_left <= 0) return;
  const auto delay = kGarpRepeat[std::size(kGarpRepeat) - static_cast<size_t>(repeats_left)];
  const uint64_t generation = ++garp_timer_.generation;
  garp_timer_.timer.expires_after(delay);
  garp_timer_.timer.async_wait([this, generation, repeats_left](boost::system::error_code ec) {
    if (ec || generation != garp_timer_.generation || machine_.state() != State::Master) return;
    announce_vips(repeats_left - 1);
  });
}

void VrrpGroup::on_packet(Interface& iface, const ParsedAdvert& p) {
  const AdmissionVerdict v = admit_advert(
      p, {config_.vrid, iface.config->peer_address, vip_addresses_, peer_priority_});
  uint64_t* counter = nullptr;
  switch (v.admission) {
    case Admission::Accepted:
      break;
    case Admission::OtherVrid:
      ++counters_.other_vrid;
      return;
    case Admission::RejectedTtl:
      counter = &counters_.rejected_ttl;
      break;
    case Admission::RejectedSource:
      counter = &counters_.rejected_source;
      break;
    case Admission::RejectedMalformed:
      counter = &counters_.rejected_malformed;
      break;
    case Admission::RejectedPriority:
      counter = &counters_.rejected_priority;
      break;
  }
  if (counter) {
    if (log::should_log(++*counter)) {
      const std::string line = "rejected advert on " + iface.config->name + " " + v.reason;
      v.error ? log::error("vrrp", line) : log::warning("vrrp", line);
    }
    return;
  }
  ++counters_.adverts_received;
  grace_given_ = false;
  alive_graces_ = 0;
  last_peer_advert_ = std::chrono::steady_clock::now();
  // The tie-break must give the same answer on every interface: compared per interface (our
  // LAN address with the peer's WAN one, or IPv6 link-locals with IPv4 addresses) two Masters
  // of equal priority could each see the other win on one link, both step down and take over
  // again together. So the machine always sees the peer as its address on the first
  // interface, compared with ours there (open()); this advert's source is that peer's.
  const StateKnowledge k = state_knowledge_ ? state_knowledge_() : StateKnowledge{};
  post(AdvertReceived{p.advert.priority, p.advert.max_adver_interval_cs,
                      interfaces_.front().config->peer_address, k.we_hold, k.peer_holds});
}

}  // namespace fwha::vrrp
