// VRRPv3 state machine, RFC 5798 section 6.4, IPv4 only for now.
//
// Design:
// - Pure: handle() maps (state, event, config) to a list of actions; the driver performs them
//   in order. No clock, sockets or logging here, so every (state, event) cell is unit-tested.
// - One visitor per state (on_initialize/on_backup/on_master) lists every event explicitly,
//   ignored ones included; a forgotten event does not compile. handle() switches on the state
//   without `default`, so -Werror=switch-enum lists a forgotten state.
// - enter() is the only writer of state_ and records why (last_reason_). Transitions compute
//   their actions first and call enter() last, like the RFC's "Transition to ..." line.
// - The RFC's actions are followed literally, plus the VIP handling the RFC leaves implicit:
//   AddVips before the gratuitous ARP when becoming Master, RemoveVips when becoming Backup
//   (also at startup: a crashed Master may have left them) and on shutdown.
// - Timers: Skew_Time always uses the LOCAL priority (RFC 5798 6.1) with the current
//   Master_Adver_Interval, in integer microseconds: (256 - p) * interval_cs * 10000 / 256,
//   truncated to whole microseconds (the RFC's centisecond division would lose far more).
#include "src/vrrp/vrrp_state_machine.h"

#include <algorithm>

namespace fwha::vrrp {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

constexpr int64_t kMicrosPerCentisecond = 10000;

std::chrono::microseconds from_cs(uint32_t cs) {
  return std::chrono::microseconds{static_cast<int64_t>(cs) * kMicrosPerCentisecond};
}

// RFC 5798 6.4.3: "the primary IPvX Address of the sender is greater than the local primary
// IPvX Address" - compared as unsigned integers in network byte order, i.e. bytewise.
bool address_greater(const IpAddress& theirs, const IpAddress& ours) {
  if (theirs.family != ours.family) return false;
  const auto n = static_cast<std::ptrdiff_t>(ours.size());
  return std::lexicographical_compare(ours.bytes.begin(), ours.bytes.begin() + n,
                                      theirs.bytes.begin(), theirs.bytes.begin() + n);
}

}  // namespace

const char* to_string(State s) {
  switch (s) {
    case State::Initialize:
      return "Initialize";
    case State::Backup:
      return "Backup";
    case State::Master:
      return "Master";
    case State::Fault:
      return "Fault";
  }
  return "unknown";
}

const char* to_string(Reason r) {
  switch (r) {
    case Reason::None:
      return "none";
    case Reason::Startup:
      return "startup";
    case Reason::MasterDown:
      return "master_down";
    case Reason::HigherPriorityMaster:
      return "higher_priority_master";
    case Reason::Shutdown:
      return "shutdown";
    case Reason::Stalled:
      return "stalled";
    case Reason::LinkDown:
      return "link_down";
    case Reason::LinkUp:
      return "link_up";
    case Reason::HandoverReceived:
      return "handover_received";
    case Reason::HandedOver:
      return "handed_over";
    case Reason::PeerHoldsState:
      return "peer_holds_state";
  }
  return "unknown";
}

const char* event_name(const Event& e) {
  return std::visit(Overloaded{
                        [](const Startup&) { return "Startup"; },
                        [](const Shutdown&) { return "Shutdown"; },
                        [](const MasterDownTimerExpired&) { return "MasterDownTimerExpired"; },
                        [](const AdverTimerExpired&) { return "AdverTimerExpired"; },
                        [](const AdvertReceived&) { return "AdvertReceived"; },
                        [](const ResumedAfterStall&) { return "ResumedAfterStall"; },
                        [](const LinkDown&) { return "LinkDown"; },
                        [](const LinkUp&) { return "LinkUp"; },
                        [](const PreemptDelayExpired&) { return "PreemptDelayExpired"; },
                        [](const HandoverStarted&) { return "HandoverStarted"; },
                        [](const HandoverConfirmed&) { return "HandoverConfirmed"; },
                        [](const HandoverAborted&) { return "HandoverAborted"; },
                        [](const HandoverRequested&) { return "HandoverRequested"; },
                        [](const PeerStateComplete&) { return "PeerStateComplete"; },
                    },
                    e);
}

StateMachine::StateMachine(Config config)
    : config_(config), master_adver_interval_cs_(config.advert_interval_cs) {}

std::chrono::microseconds StateMachine::skew_time() const {
  // RFC 5798 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256, in cs.
  const int64_t p = config_.priority;
  return std::chrono::microseconds{(256 - p) * master_adver_interval_cs_ * kMicrosPerCentisecond /
                                   256};
}

std::chrono::microseconds StateMachine::master_down_interval() const {
  // RFC 5798 6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time.
  return 3 * from_cs(master_adver_interval_cs_) + skew_time();
}

const char* StateMachine::preempt_hold() const {
  if (!config_.preempt) return "";
  if (preempt_delayed_) return "delay";
  if (preempt_awaiting_state_) return "state";
  if (preempt_suspended_) return "handover";
  return "";
}

std::vector<Action> StateMachine::handle(const Event& event) {
  std::vector<Action> out;
  if (std::holds_alternative<PeerStateComplete>(event)) {  // the same in every state
    preempt_awaiting_state_ = false;
    return out;
  }
  switch (state_) {
    case State::Initialize:
      on_initialize(event, out);
      break;
    case State::Backup:
      on_backup(event, out);
      break;
    case State::Master:
      on_master(event, out);
      break;
    case State::Fault:
      on_fault(event, out);
      break;
  }
  return out;
}

void StateMachine::enter(State next, Reason why) {
  state_ = next;
  last_reason_ = why;
  handing_over_ = false;
  preempting_ = false;
}

// RFC 5798 6.4.2 "Transition to the Master state", with the VIPs added first.
void StateMachine::become_master(std::vector<Action>& out, Reason why) {
  out.push_back(AddVips{});
  out.push_back(SendAdvert{config_.priority});
  out.push_back(SendGratuitousArp{});
  out.push_back(StartAdverTimer{from_cs(config_.advert_interval_cs)});
  preempt_suspended_ = false;  // the hold after a handover ends once we serve the group
  enter(State::Master, why);
}

// The peer is Master now (its advert, or its answer to our handover): Backup, and no
// preemption back until we are Master again.
void StateMachine::hand_over_done(std::vector<Action>& out, uint16_t peer_interval_cs) {
  out.push_back(CancelAdverTimer{});
  master_adver_interval_cs_ = peer_interval_cs;
  out.push_back(StartMasterDownTimer{master_down_interval()});
  out.push_back(RemoveVips{});
  preempt_suspended_ = true;
  enter(State::Backup, Reason::HandedOver);
}

// RFC 5798 6.4.1.
void StateMachine::on_initialize(const Event& e, std::vector<Action>& out) {
  std::visit(Overloaded{
                 [&](const Startup&) {
                   if (config_.priority == 255) {  // address owner: Master at once
                     out.push_back(AddVips{});
                     out.push_back(SendAdvert{config_.priority});
                     out.push_back(SendGratuitousArp{});
                     out.push_back(StartAdverTimer{from_cs(config_.advert_interval_cs)});
                     enter(State::Master, Reason::Startup);
                     return;
                   }
                   master_adver_interval_cs_ = config_.advert_interval_cs;
                   out.push_back(StartMasterDownTimer{master_down_interval()});
                   out.push_back(RemoveVips{});  // a crashed Master may have left them behind
                   preempt_delayed_ = config_.preempt && config_.preempt_delay.count() > 0;
                   preempt_awaiting_state_ = config_.preempt && config_.preempt_waits_for_state;
                   if (preempt_delayed_) out.push_back(StartPreemptDelayTimer{config_.preempt_delay});
                   enter(State::Backup, Reason::Startup);
                 },
                 [](const Shutdown&) {},                // ignored: not running
                 [](const MasterDownTimerExpired&) {},  // ignored: no timer runs in Initialize
                 [](const AdverTimerExpired&) {},       // ignored: no timer runs in Initialize
                 [](const AdvertReceived&) {},          // ignored: not running
                 [](const ResumedAfterStall&) {},       // ignored: not running
                 [](const LinkDown&) {},  // ignored: the driver repeats it after Startup
                 [](const LinkUp&) {},
                 [](const PreemptDelayExpired&) {},  // ignored: not running
                 [](const HandoverStarted&) {},      // ignored: not Master
                 [](const HandoverConfirmed&) {},
                 [](const HandoverAborted&) {},
                 [](const HandoverRequested&) {},  // refused: not running yet
                 [](const PeerStateComplete&) {},  // handled in handle()
             },
             e);
}

// RFC 5798 6.4.2.
void StateMachine::on_backup(const Event& e, std::vector<Action>& out) {
  std::visit(Overloaded{
                 [](const Startup&) {},  // ignored: already running
                 [&](const Shutdown&) {
                   out.push_back(CancelMasterDownTimer{});
                   enter(State::Initialize, Reason::Shutdown);
                 },
                 [&](const MasterDownTimerExpired&) { become_master(out, Reason::MasterDown); },
                 [](const AdverTimerExpired&) {},  // ignored: a Backup runs no Adver_Timer
                 [&](const AdvertReceived& adv) {
                   preempting_ = false;
                   if (adv.priority == 0) {  // the Master is leaving: take over after Skew_Time
                     out.push_back(StartMasterDownTimer{skew_time()});
                     return;
                   }
                   if (!config_.preempt || preempt_delayed_ || preempt_suspended_ ||
                       preempt_awaiting_state_ || adv.priority >= config_.priority) {
                     master_adver_interval_cs_ = adv.max_adver_interval_cs;
                     out.push_back(StartMasterDownTimer{master_down_interval()});
                     return;
                   }
                   // Preempt_Mode and a lower priority Master: discard, so Master_Down_Timer
                   // expires and we preempt it.
                   preempting_ = true;
                 },
                 // Our Master_Down_Timer, if overdue, fires right after: the usual rules.
                 [](const ResumedAfterStall&) {},
                 [&](const LinkDown&) {  // cannot serve the group: never take it over
                   out.push_back(CancelMasterDownTimer{});
                   enter(State::Fault, Reason::LinkDown);
                 },
                 [](const LinkUp&) {},  // ignored: not in Fault
                 [&](const PreemptDelayExpired&) { preempt_delayed_ = false; },
                 [](const HandoverStarted&) {},  // ignored: not Master
                 [](const HandoverConfirmed&) {},  // already Backup (the peer's advert came first)
                 [](const HandoverAborted&) {},
                 // The peer hands the group over, and its state is applied: no Skew_Time.
                 [&](const HandoverRequested&) {
                   out.push_back(CancelMasterDownTimer{});
                   become_master(out, Reason::HandoverReceived);
                 },
                 [](const PeerStateComplete&) {},  // handled in handle()
             },
             e);
}

// RFC 5798 6.4.3.
void StateMachine::on_master(const Event& e, std::vector<Action>& out) {
  std::visit(
      Overloaded{
          [](const Startup&) {},  // ignored: already running
          [&](const Shutdown&) {
            out.push_back(CancelAdverTimer{});
            out.push_back(SendAdvert{0});  // hand over within the peer's Skew_Time
            out.push_back(RemoveVips{});
            enter(State::Initialize, Reason::Shutdown);
          },
          [](const MasterDownTimerExpired&) {},  // ignored: a Master runs no Master_Down_Timer
          [&](const ResumedAfterStall&) {
            // We stopped sending adverts for longer than the peer waits: it has most likely
            // taken over, and its table holds the flows opened meanwhile, ours does not.
            // Winning the tie-break now would cause a second outage and lose those flows, so
            // step down; if no Master speaks within one interval (+ Skew_Time), take over again.
            out.push_back(CancelAdverTimer{});
            out.push_back(RemoveVips{});
            master_adver_interval_cs_ = config_.advert_interval_cs;
            out.push_back(
                StartMasterDownTimer{from_cs(config_.advert_interval_cs) + skew_time()});
            enter(State::Backup, Reason::Stalled);
          },
          [&](const LinkDown&) {
            // Hand over now: priority 0 makes the Backup take over after Skew_Time instead of
            // Master_Down_Interval (the advert goes out on the interfaces that still work).
            out.push_back(CancelAdverTimer{});
            out.push_back(SendAdvert{0});
            out.push_back(RemoveVips{});
            enter(State::Fault, Reason::LinkDown);
          },
          [](const LinkUp&) {},  // ignored: not in Fault
          [&](const PreemptDelayExpired&) { preempt_delayed_ = false; },
          [&](const AdverTimerExpired&) {
            if (handing_over_) return;  // its timer was cancelled; a stale expiry
            out.push_back(SendAdvert{config_.priority});
            out.push_back(StartAdverTimer{from_cs(config_.advert_interval_cs)});
          },
          [&](const HandoverStarted&) {
            // Silent until the peer is Master: an advert with our priority now would make
            // the new Master step down again.
            out.push_back(CancelAdverTimer{});
            handing_over_ = true;
          },
          [&](const HandoverConfirmed&) {
            if (handing_over_) hand_over_done(out, config_.advert_interval_cs);
          },
          [&](const HandoverAborted&) {
            if (!handing_over_) return;
            handing_over_ = false;  // still ours: advertise again at once
            out.push_back(SendAdvert{config_.priority});
            out.push_back(StartAdverTimer{from_cs(config_.advert_interval_cs)});
          },
          [](const HandoverRequested&) {},  // refused: we are the Master
          [](const PeerStateComplete&) {},  // handled in handle()
          [&](const AdvertReceived& adv) {
            if (handing_over_ && adv.priority != 0 && adv.source != config_.primary_address) {
              // The peer we are handing over to is Master now (its advert can come before
              // its answer on the sync link), whatever its priority.
              hand_over_done(out, adv.max_adver_interval_cs);
              return;
            }
            if (adv.priority == 0) {  // another Master is leaving: assert ourselves at once
              out.push_back(SendAdvert{config_.priority});
              out.push_back(StartAdverTimer{from_cs(config_.advert_interval_cs)});
              return;
            }
            if (adv.source == config_.primary_address) return;  // our own, looped back
            // Two Masters, one of them without the group's state (it restarted and took over
            // before its first sync finished, the peer having stalled): priorities must not
            // give it the group, or every session dies (issue 4: "a rebooted node takes the
            // VIP back before it has the state" must be impossible).
            const bool state_decides = adv.we_hold_state != adv.sender_holds_state;
            const bool better =
                state_decides ? adv.sender_holds_state
                              : adv.priority > config_.priority ||
                                    (adv.priority == config_.priority &&
                                     address_greater(adv.source, config_.primary_address));
            if (!better) {
              // Two Masters: the tie-break says we stay. RFC 5798 only discards the advert and
              // lets our next one make the other step down, but meanwhile neighbours (and the
              // other node's replicas) follow whoever announced last: a node that woke from a
              // freeze or a false takeover has just moved the VIPs' MAC to itself. So assert
              // at once and re-announce the VIPs (RFC 9568 asks the winner to re-announce).
              out.push_back(SendAdvert{config_.priority});
              out.push_back(StartAdverTimer{from_cs(config_.advert_interval_cs)});
              out.push_back(SendGratuitousArp{});
              return;
            }
            out.push_back(CancelAdverTimer{});
            master_adver_interval_cs_ = adv.max_adver_interval_cs;
            out.push_back(StartMasterDownTimer{master_down_interval()});
            out.push_back(RemoveVips{});
            enter(State::Backup,
                  state_decides ? Reason::PeerHoldsState : Reason::HigherPriorityMaster);
          },
      },
      e);
}

// Not in RFC 5798: a node without carrier on a monitored interface waits for it to return,
// then starts over as a Backup (which takes over only if no Master speaks).
void StateMachine::on_fault(const Event& e, std::vector<Action>& out) {
  std::visit(Overloaded{
                 [](const Startup&) {},  // ignored: already running
                 [&](const Shutdown&) { enter(State::Initialize, Reason::Shutdown); },
                 [](const MasterDownTimerExpired&) {},  // ignored: no timer runs in Fault
                 [](const AdverTimerExpired&) {},       // ignored: no timer runs in Fault
                 [](const AdvertReceived&) {},          // ignored: we cannot serve the group
                 [](const ResumedAfterStall&) {},
                 [](const LinkDown&) {},  // ignored: already in Fault
                 [&](const PreemptDelayExpired&) { preempt_delayed_ = false; },
                 [&](const LinkUp&) {
                   master_adver_interval_cs_ = config_.advert_interval_cs;
                   out.push_back(StartMasterDownTimer{master_down_interval()});
                   enter(State::Backup, Reason::LinkUp);
                 },
                 [](const HandoverStarted&) {},  // ignored: not Master
                 [](const HandoverConfirmed&) {},
                 [](const HandoverAborted&) {},
                 [](const HandoverRequested&) {},  // refused: we cannot serve the group
                 [](const PeerStateComplete&) {},  // handled in handle()
             },
             e);
}

}  // namespace fwha::vrrp
