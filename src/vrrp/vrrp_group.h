// Drives one VRRP group: owns the pure StateMachine, performs its actions (adverts on every
// interface of the group, VIPs, gratuitous ARP, timers) and feeds it events (timer expiries,
// validated adverts). In Active/Passive one group holds every VIP, LAN and WAN together, so
// they always move as one (like keepalived's sync group): an advert from the peer on any
// interface of the group keeps us Backup.
//
// Received adverts are admitted (advert_admission.h) before the state machine sees them: parse
// errors, TTL other than 255, any source other than the configured peer and a priority other
// than the peer's are dropped, logged and counted (RFC 5798 7.1 plus DESIGN.md: only the
// configured peer may speak).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "config/config.h"
#include "fwha/asio.h"
#include "vip/address_port.h"
#include "vip/virtual_mac.h"
#include "vrrp/vrrp_socket.h"
#include "vrrp/vrrp_socket6.h"
#include "vrrp/link_monitor.h"
#include "vrrp/vrrp_state_machine.h"

namespace fwha::vrrp {

struct GroupCounters {
  uint64_t adverts_sent = 0;
  uint64_t advert_send_errors = 0;  // the kernel refused to send one (EPERM: netfilter dropped it)
  uint64_t adverts_received = 0;
  uint64_t rejected_malformed = 0;
  uint64_t rejected_ttl = 0;
  uint64_t rejected_source = 0;
  uint64_t rejected_priority = 0;  // from the peer's address, not the peer's priority: forged
  uint64_t other_vrid = 0;   // another VRRP group on the same link: not ours, not an error
  uint64_t transitions = 0;
  uint64_t vip_errors = 0;
  uint64_t stalls = 0;       // Master found it had not run for the peer's Master_Down_Interval
  uint64_t stalls_survived = 0;    // Master stalled as long, but the peer had not taken over
  uint64_t late_timer_graces = 0;  // Backup: Master_Down_Timer fired late, one more interval
  uint64_t alive_graces = 0;       // Backup: adverts late but the Master spoke on the sync link
};

class VrrpGroup {
 public:
  using StateChange = std::function<void(State from, State to, Reason why)>;
  // Takeover is a transaction: before a Backup that lost its Master adds the VIPs, the owner
  // makes sure the replicated state is in the kernel and then calls `proceed` (on this
  // group's io_context; the owner bounds the wait). Events meanwhile wait their turn.
  using BeforeTakeover = std::function<void(std::function<void()> proceed)>;

  VrrpGroup(boost::asio::io_context& io, const config::Group& config, vip::AddressPort& addresses,
            StateChange on_change);
  ~VrrpGroup();

  // Before open(), with config.virtual_mac: the links the virtual MAC links are made through.
  void set_link_port(vip::LinkPort& links) { links_port_ = &links; }
  // Looks up interfaces, opens sockets and (virtual_mac) makes the virtual MAC links, down;
  // nothing is sent yet.
  std::error_code open(std::string& what_failed);
  void set_before_takeover(BeforeTakeover hook) { before_takeover_ = std::move(hook); }
  // Asked when the Master_Down_Timer expires: does the Master still speak on another channel
  // (the sync link)? Then its adverts are late, not gone: wait one more interval, at most
  // kMaxAliveGraces times in a row.
  void set_master_alive_elsewhere(std::function<bool()> check) { alive_elsewhere_ = std::move(check); }
  // With conntrack replication: {whether our table holds the group's state, whether the peer
  // said its does}, asked at each advert from the peer (vrrp_state_machine.h, AdvertReceived).
  struct StateKnowledge {
    bool we_hold = true;
    bool peer_holds = true;
  };
  void set_state_knowledge(std::function<StateKnowledge()> ask) { state_knowledge_ = std::move(ask); }
  // Before open(): with preempt, wait for peer_state_complete() before preempting.
  void set_preempt_waits_for_state(bool wait) { preempt_waits_for_state_ = wait; }
  void peer_state_complete() { post(PeerStateComplete{}); }
  const char* preempt_hold() const { return machine_.preempt_hold(); }
  // The peer's configured priority, as it told us on the sync link: an advert from the peer's
  // address with another priority (other than 0) is forged and refused.
  void set_peer_priority(uint8_t priority) { peer_priority_ = priority; }
  void start();     // Startup event
  void shutdown();  // Shutdown event: a Master sends priority 0 and removes its VIPs
  // Handover over the sync link (vrrp_state_machine.h): the Master's side...
  void handover_started() { post(HandoverStarted{}); }
  void handover_confirmed() { post(HandoverConfirmed{}); }
  void handover_aborted() { post(HandoverAborted{}); }
  // ...and the peer's: returns whether we are Master now.
  bool handover_requested() {
    post(HandoverRequested{});
    return machine_.state() == State::Master;
  }

  State state() const { return machine_.state(); }
  Reason last_reason() const { return machine_.last_reason(); }
  std::chrono::steady_clock::time_point state_since() const { return state_since_; }
  // When the last valid advert from the peer arrived (any interface); nullopt if never.
  std::optional<std::chrono::steady_clock::time_point> last_peer_advert() const {
    return last_peer_advert_;
  }
  const GroupCounters& counters() const { return counters_; }
  const config::Group& config() const { return config_; }

 private:
  struct Interface {
    const config::VipInterface* config = nullptr;
    InterfaceInfo info;  // primary: IPv4 address, or link-local with IPv6 adverts
    std::unique_ptr<VrrpSocket> socket;    // IPv4 adverts, or
    std::unique_ptr<VrrpSocket6> socket6;  // IPv6 adverts (peer_address is IPv6)
    std::unique_ptr<vip::VirtualMacLink> vmac;  // virtual_mac: where the VIPs live
    int vips_on = 0;  // where the VIPs were added: the vmac link, or (no vmac, or it would not
                      // come up) the interface itself
    bool carrier = true;
  };
  std::error_code open_virtual_macs(std::string& what_failed);
  void on_link(int ifindex, bool carrier);
  size_t interfaces_without_carrier() const;
  // A timer whose stale expiries are ignored: cancel() cannot recall a handler that is already
  // queued, so every arm bumps a generation the handler must match.
  struct Timer {
    explicit Timer(boost::asio::io_context& io) : timer(io) {}
    boost::asio::steady_timer timer;
    uint64_t generation = 0;
  };

  // Every event enters here; a Master that finds it did not run for a Master_Down_Interval
  // first hands the machine ResumedAfterStall.
  void post(const Event& event);
  void handle(const Event& event);
  void perform(const Action& action);
  void arm(Timer& timer, std::chrono::microseconds after, Event on_expiry);
  bool late_takeover_grace(Timer& timer);
  bool alive_elsewhere_grace();
  void resume_after_stall(std::chrono::steady_clock::duration gap);
  std::chrono::microseconds peer_master_down_interval() const;
  void cancel(Timer& timer);
  void send_adverts(uint8_t priority);
  void set_vips(bool present);
  void announce_vips(int repeats_left);
  void on_packet(Interface& iface, const ParsedAdvert& p);

  boost::asio::io_context& io_;
  config::Group config_;
  std::vector<IpAddress> vip_addresses_;  // every VIP of the group (advert_admission.h)
  vip::AddressPort& addresses_;
  vip::LinkPort* links_port_ = nullptr;
  StateChange on_change_;
  StateMachine machine_;
  std::vector<Interface> interfaces_;
  Timer adver_timer_;
  Timer master_down_timer_;
  Timer garp_timer_;
  Timer preempt_timer_;
  std::chrono::steady_clock::time_point state_since_ = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> last_peer_advert_;
  GroupCounters counters_;
  BeforeTakeover before_takeover_;
  bool preempt_waits_for_state_ = false;
  std::optional<uint8_t> peer_priority_;
  bool grace_given_ = false;  // one grace per silence: reset by the peer's next advert
  std::function<bool()> alive_elsewhere_;
  std::function<StateKnowledge()> state_knowledge_;
  int alive_graces_ = 0;      // in a row, reset by the peer's next advert
  bool probing_stall_ = false;   // resume_after_stall() is reading the queued adverts
  bool peer_took_over_ = false;  // ... and found one from the peer as Master
  // A takeover waiting for before_takeover_: its actions, and the events that came meanwhile.
  bool takeover_pending_ = false;
  std::vector<Action> takeover_actions_;
  std::vector<Event> held_events_;
  void finish_takeover();
  std::optional<std::chrono::steady_clock::time_point> last_event_at_;
  std::unique_ptr<LinkMonitor> links_;
};

}  // namespace fwha::vrrp
