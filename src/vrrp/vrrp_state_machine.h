// VRRPv3 state machine for one VRRP group (RFC 5798 section 6.4), pure: events in, actions
// out. No sockets, no clock, no event loop: the driver (vrrp_group.cpp) performs the actions
// and turns timer expiries and received adverts back into events, so every transition is
// unit-tested with a manual clock.
//
// Names follow the RFC: Master_Adver_Interval, Master_Down_Interval, Skew_Time, Adver_Timer,
// Master_Down_Timer. Intervals are in centiseconds on the wire and in the config; durations
// handed to timers are std::chrono::microseconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "fwha/ip_address.h"

namespace fwha::vrrp {

// Fault is not an RFC 5798 state: a monitored interface has no carrier, so this node cannot
// serve the group and must not take it (keepalived calls it FAULT).
enum class State : uint8_t { Initialize, Backup, Master, Fault };
const char* to_string(State s);

struct Config {
  uint8_t priority = 100;              // 1..254 (255 = address owner, 0 is reserved)
  uint16_t advert_interval_cs = 100;   // Advertisement_Interval, 1..4095 cs
  bool preempt = false;                // Preempt_Mode
  IpAddress primary_address;           // our source address on the advert interfaces (tie-break)
  // With preempt: do not preempt a lower-priority Master until this long after Startup, so a
  // node that just rebooted first receives the Master's state (0: preempt at once).
  std::chrono::microseconds preempt_delay{0};
  // With preempt: do not preempt before the peer's state is in our table (PeerStateComplete:
  // the first complete reconciliation round after start), so a rejoining node never takes the
  // group back with a partial table. Set when conntrack replication is on.
  bool preempt_waits_for_state = false;
};

// --- events -------------------------------------------------------------------------------
struct Startup {};
struct Shutdown {};  // graceful stop: a Master sends priority 0 (RFC 5798 6.4.3)
struct MasterDownTimerExpired {};
struct AdverTimerExpired {};
struct AdvertReceived {               // already validated (TTL, source, checksum, VRID)
  uint8_t priority = 0;
  uint16_t max_adver_interval_cs = 0;
  IpAddress source;
  // With conntrack replication, from the sync link: whether this node's table holds the
  // group's state (false only for a node that restarted and has not finished its first sync
  // from a peer that held it), and whether the sender's does, as it said. Two Masters: the
  // one without the state gives way, whatever the priorities (defaults: RFC 5798 alone).
  bool we_hold_state = true;
  bool sender_holds_state = true;
};
// The driver found that this node did not run for longer than a Master_Down_Interval (the
// process was stopped, starved or the VM paused): the peer has probably taken over meanwhile.
// Delivered before anything else that happened during the stall.
struct ResumedAfterStall {};
// A monitored interface lost its carrier (the first of them); all have it again.
struct LinkDown {};
struct LinkUp {};
struct PreemptDelayExpired {};
// Handover over the sync link (not in RFC 5798; a pair has one Backup, so Skew_Time buys
// nothing there). The Master, for a switchover or a graceful stop, starts one
// (HandoverStarted: it stops advertising so its priority cannot beat the new Master), asks the
// peer, and steps down when the peer's advert arrives or the peer confirms
// (HandoverConfirmed); HandoverAborted when the peer refused or did not answer.
// HandoverRequested: the peer asks us to take over, and everything it sent before is applied.
struct HandoverStarted {};
struct HandoverConfirmed {};
struct HandoverAborted {};
struct HandoverRequested {};
// The replicated state from the peer is in our table (a reconciliation round ended complete).
struct PeerStateComplete {};
using Event = std::variant<Startup, Shutdown, MasterDownTimerExpired, AdverTimerExpired,
                           AdvertReceived, ResumedAfterStall, LinkDown, LinkUp,
                           PreemptDelayExpired, HandoverStarted, HandoverConfirmed,
                           HandoverAborted, HandoverRequested, PeerStateComplete>;
const char* event_name(const Event& e);

// --- actions ------------------------------------------------------------------------------
struct SendAdvert {
  uint8_t priority = 0;
  friend bool operator==(const SendAdvert&, const SendAdvert&) = default;
};
struct StartAdverTimer {
  std::chrono::microseconds after{};
  friend bool operator==(const StartAdverTimer&, const StartAdverTimer&) = default;
};
struct StartMasterDownTimer {
  std::chrono::microseconds after{};
  friend bool operator==(const StartMasterDownTimer&, const StartMasterDownTimer&) = default;
};
struct StartPreemptDelayTimer {
  std::chrono::microseconds after{};
  friend bool operator==(const StartPreemptDelayTimer&, const StartPreemptDelayTimer&) = default;
};
struct CancelAdverTimer {
  friend bool operator==(CancelAdverTimer, CancelAdverTimer) = default;
};
struct CancelMasterDownTimer {
  friend bool operator==(CancelMasterDownTimer, CancelMasterDownTimer) = default;
};
struct AddVips {  // add every VIP of the group (rtnetlink)
  friend bool operator==(AddVips, AddVips) = default;
};
struct RemoveVips {
  friend bool operator==(RemoveVips, RemoveVips) = default;
};
struct SendGratuitousArp {  // gratuitous ARP / unsolicited NA for every VIP
  friend bool operator==(SendGratuitousArp, SendGratuitousArp) = default;
};
using Action = std::variant<SendAdvert, StartAdverTimer, StartMasterDownTimer, CancelAdverTimer,
                            CancelMasterDownTimer, AddVips, RemoveVips, SendGratuitousArp,
                            StartPreemptDelayTimer>;

// Why the state last changed; counted per reason and shown by `fwhactl status`.
enum class Reason : uint8_t {
  None,
  Startup,              // Initialize -> Backup, or -> Master for priority 255
  MasterDown,           // Master_Down_Timer expired: no advert from a Master
  HigherPriorityMaster, // Master saw a better advert (priority or tie-break) and stepped down
  Shutdown,             // graceful stop
  Stalled,              // Master that did not run for a Master_Down_Interval stepped down
  LinkDown,             // a monitored interface lost carrier: Fault
  LinkUp,               // every monitored interface has carrier again: Fault -> Backup
  HandoverReceived,     // Backup -> Master: the peer handed the group over (sync link)
  HandedOver,           // Master -> Backup: we handed the group over to the peer
  PeerHoldsState,       // Master -> Backup: two Masters, and only the peer holds the state
};
const char* to_string(Reason r);

class StateMachine {
 public:
  explicit StateMachine(Config config);

  // Handles one event and returns the actions to perform, in order.
  std::vector<Action> handle(const Event& event);

  State state() const { return state_; }
  Reason last_reason() const { return last_reason_; }
  bool handing_over() const { return handing_over_; }
  // Why Preempt_Mode is held back right now: "delay", "state", "handover" or "" (not held,
  // or no preempt).
  const char* preempt_hold() const;
  // Backup that discarded the Master's last advert to preempt it (lower priority, Preempt_Mode
  // not held): the Master_Down_Timer running out now is the preemption, not a silent Master,
  // so the driver's graces for late adverts (vrrp_group.cpp) must not put it off.
  bool preempting() const { return preempting_; }
  uint16_t master_adver_interval_cs() const { return master_adver_interval_cs_; }
  const Config& config() const { return config_; }

  // RFC 5798 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256,
  // Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
  std::chrono::microseconds skew_time() const;
  std::chrono::microseconds master_down_interval() const;

 private:
  // The only place state_ changes.
  void enter(State next, Reason why);
  // per state handlers (append to out)
  void on_initialize(const Event& e, std::vector<Action>& out);
  void on_backup(const Event& e, std::vector<Action>& out);
  void on_master(const Event& e, std::vector<Action>& out);
  void on_fault(const Event& e, std::vector<Action>& out);

  Config config_;
  State state_ = State::Initialize;
  Reason last_reason_ = Reason::None;
  uint16_t master_adver_interval_cs_;
  // Preempt_Mode, but not now: the preempt delay has not run out yet; or we handed the group
  // over (a switchover must not be undone by our next look at the peer's advert), until we
  // are Master again.
  bool preempt_delayed_ = false;
  bool preempt_suspended_ = false;
  bool preempt_awaiting_state_ = false;  // preempt_waits_for_state, no PeerStateComplete yet
  bool handing_over_ = false;  // Master: HandoverStarted, the peer not Master yet
  bool preempting_ = false;    // see preempting()
  void become_master(std::vector<Action>& out, Reason why);
  void hand_over_done(std::vector<Action>& out, uint16_t peer_interval_cs);
};

}  // namespace fwha::vrrp
