// Unit tests for the VRRPv3 state machine (RFC 5798 6.4).
//
// Part 1: a table visiting every (state, event) cell with the exact next state and actions.
// Part 2: timer arithmetic (RFC 5798 6.1).
// Part 3: FakeNet, a driver with a manual clock that performs the actions, fires timers in
//         deadline order and wires nodes together, for scenarios over simulated time.
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "src/vrrp/vrrp_state_machine.h"

namespace fwha::vrrp {

// Readable failure messages for the actions that carry a value.
void PrintTo(const SendAdvert& a, std::ostream* os) {
  *os << "SendAdvert{" << int{a.priority} << "}";
}
void PrintTo(const StartAdverTimer& a, std::ostream* os) {
  *os << "StartAdverTimer{" << a.after.count() << "us}";
}
void PrintTo(const StartMasterDownTimer& a, std::ostream* os) {
  *os << "StartMasterDownTimer{" << a.after.count() << "us}";
}

namespace {

using std::chrono::microseconds;
using Actions = std::vector<Action>;

constexpr microseconds kSecond{1'000'000};
constexpr microseconds kOneUs{1};

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

const IpAddress kLocal = ip("192.0.2.10");
const IpAddress kHigherAddr = ip("192.0.2.20");
const IpAddress kLowerAddr = ip("192.0.2.5");

Config config(uint8_t priority = 100, bool preempt = false, uint16_t interval_cs = 100,
              IpAddress primary = kLocal) {
  return Config{priority, interval_cs, preempt, primary};
}

AdvertReceived advert(uint8_t priority, uint16_t interval_cs = 100, IpAddress src = kLowerAddr) {
  return AdvertReceived{priority, interval_cs, src};
}

// ================================ Part 1: every cell =========================================

StateMachine machine_in(State s, const Config& c) {
  StateMachine m(c);
  if (s == State::Initialize) return m;
  m.handle(Startup{});
  if (s == State::Master && m.state() != State::Master) m.handle(MasterDownTimerExpired{});
  if (s == State::Fault) m.handle(LinkDown{});
  EXPECT_EQ(m.state(), s);
  return m;
}

struct Cell {
  std::string name;
  State from;
  Config cfg;
  Event event;
  State to;
  Actions actions;
  Reason reason;  // last_reason() afterwards
};

// Priority 100, interval 100 cs: Skew_Time 609375 us, Master_Down_Interval 3609375 us.
// An advert with interval 200 cs gives Master_Down_Interval 3 * 2 s + 1218750 us.
const microseconds kMdi100{3'609'375};
const microseconds kSkew100{609'375};
const microseconds kSkew150{414'062};  // (256 - 150) * 1 s / 256, truncated
const microseconds kMdi200{7'218'750};

std::vector<Cell> cells() {
  using S = State;
  using R = Reason;
  const Config dflt = config();
  const Config pre = config(100, true);
  const Config owner = config(255);
  Config delayed = config(100, true);
  delayed.preempt_delay = 30 * kSecond;
  // One cell per entry reads better than one field per line.
  // clang-format off
  return {
      // --- Initialize (6.4.1)
      {"Init_Startup", S::Initialize, dflt, Startup{}, S::Backup,
       {StartMasterDownTimer{kMdi100}, RemoveVips{}}, R::Startup},
      {"Init_Startup_Owner255", S::Initialize, owner, Startup{}, S::Master,
       {AddVips{}, SendAdvert{255}, SendGratuitousArp{}, StartAdverTimer{kSecond}}, R::Startup},
      {"Init_Shutdown", S::Initialize, dflt, Shutdown{}, S::Initialize, {}, R::None},
      {"Init_MasterDown", S::Initialize, dflt, MasterDownTimerExpired{}, S::Initialize, {},
       R::None},
      {"Init_AdverTimer", S::Initialize, dflt, AdverTimerExpired{}, S::Initialize, {}, R::None},
      {"Init_Advert", S::Initialize, dflt, advert(200), S::Initialize, {}, R::None},
      {"Init_Stall", S::Initialize, dflt, ResumedAfterStall{}, S::Initialize, {}, R::None},
      {"Init_LinkDown", S::Initialize, dflt, LinkDown{}, S::Initialize, {}, R::None},
      {"Init_LinkUp", S::Initialize, dflt, LinkUp{}, S::Initialize, {}, R::None},
      {"Init_PreemptDelay", S::Initialize, dflt, PreemptDelayExpired{}, S::Initialize, {},
       R::None},
      {"Init_HandoverStarted", S::Initialize, dflt, HandoverStarted{}, S::Initialize, {},
       R::None},
      {"Init_HandoverConfirmed", S::Initialize, dflt, HandoverConfirmed{}, S::Initialize, {},
       R::None},
      {"Init_HandoverAborted", S::Initialize, dflt, HandoverAborted{}, S::Initialize, {},
       R::None},
      {"Init_HandoverRequested", S::Initialize, dflt, HandoverRequested{}, S::Initialize, {},
       R::None},
      {"Init_PeerStateComplete", S::Initialize, dflt, PeerStateComplete{}, S::Initialize, {},
       R::None},
      {"Init_Startup_PreemptDelay", S::Initialize, delayed, Startup{}, S::Backup,
       {StartMasterDownTimer{kMdi100}, RemoveVips{}, StartPreemptDelayTimer{30 * kSecond}},
       R::Startup},
      // --- Backup (6.4.2)
      {"Backup_Startup", S::Backup, dflt, Startup{}, S::Backup, {}, R::Startup},
      {"Backup_Shutdown", S::Backup, dflt, Shutdown{}, S::Initialize, {CancelMasterDownTimer{}},
       R::Shutdown},
      {"Backup_MasterDown", S::Backup, dflt, MasterDownTimerExpired{}, S::Master,
       {AddVips{}, SendAdvert{100}, SendGratuitousArp{}, StartAdverTimer{kSecond}},
       R::MasterDown},
      {"Backup_AdverTimer", S::Backup, dflt, AdverTimerExpired{}, S::Backup, {}, R::Startup},
      {"Backup_AdvertPrio0", S::Backup, dflt, advert(0), S::Backup,
       {StartMasterDownTimer{kSkew100}}, R::Startup},
      {"Backup_AdvertLower_NoPreempt", S::Backup, dflt, advert(50, 200), S::Backup,
       {StartMasterDownTimer{kMdi200}}, R::Startup},
      {"Backup_AdvertHigher_NoPreempt", S::Backup, dflt, advert(150), S::Backup,
       {StartMasterDownTimer{kMdi100}}, R::Startup},
      {"Backup_AdvertLower_Preempt", S::Backup, pre, advert(50), S::Backup, {}, R::Startup},
      {"Backup_AdvertEqual_Preempt", S::Backup, pre, advert(100, 200), S::Backup,
       {StartMasterDownTimer{kMdi200}}, R::Startup},
      {"Backup_AdvertHigher_Preempt", S::Backup, pre, advert(150), S::Backup,
       {StartMasterDownTimer{kMdi100}}, R::Startup},
      {"Backup_Stall", S::Backup, dflt, ResumedAfterStall{}, S::Backup, {}, R::Startup},
      {"Backup_LinkDown", S::Backup, dflt, LinkDown{}, S::Fault, {CancelMasterDownTimer{}},
       R::LinkDown},
      {"Backup_LinkUp", S::Backup, dflt, LinkUp{}, S::Backup, {}, R::Startup},
      {"Backup_PreemptDelay", S::Backup, dflt, PreemptDelayExpired{}, S::Backup, {},
       R::Startup},
      {"Backup_HandoverStarted", S::Backup, dflt, HandoverStarted{}, S::Backup, {}, R::Startup},
      {"Backup_HandoverConfirmed", S::Backup, dflt, HandoverConfirmed{}, S::Backup, {},
       R::Startup},
      {"Backup_HandoverAborted", S::Backup, dflt, HandoverAborted{}, S::Backup, {}, R::Startup},
      // The Master hands over: no Skew_Time, no Master_Down_Interval.
      {"Backup_HandoverRequested", S::Backup, dflt, HandoverRequested{}, S::Master,
       {CancelMasterDownTimer{}, AddVips{}, SendAdvert{100}, SendGratuitousArp{},
        StartAdverTimer{kSecond}}, R::HandoverReceived},
      {"Backup_PeerStateComplete", S::Backup, dflt, PeerStateComplete{}, S::Backup, {},
       R::Startup},
      // Preempt_Mode but within the preempt delay: a lower-priority Master is accepted.
      {"Backup_AdvertLower_PreemptHeld", S::Backup, delayed, advert(50), S::Backup,
       {StartMasterDownTimer{kMdi100}}, R::Startup},
      // --- Master (6.4.3)
      {"Master_Startup", S::Master, dflt, Startup{}, S::Master, {}, R::MasterDown},
      {"Master_Shutdown", S::Master, dflt, Shutdown{}, S::Initialize,
       {CancelAdverTimer{}, SendAdvert{0}, RemoveVips{}}, R::Shutdown},
      {"Master_MasterDown", S::Master, dflt, MasterDownTimerExpired{}, S::Master, {},
       R::MasterDown},
      {"Master_AdverTimer", S::Master, dflt, AdverTimerExpired{}, S::Master,
       {SendAdvert{100}, StartAdverTimer{kSecond}}, R::MasterDown},
      {"Master_AdvertPrio0", S::Master, dflt, advert(0), S::Master,
       {SendAdvert{100}, StartAdverTimer{kSecond}}, R::MasterDown},
      {"Master_AdvertHigher", S::Master, dflt, advert(150, 200), S::Backup,
       {CancelAdverTimer{}, StartMasterDownTimer{kMdi200}, RemoveVips{}},
       R::HigherPriorityMaster},
      {"Master_AdvertEqual_HigherAddr", S::Master, dflt, advert(100, 100, kHigherAddr),
       S::Backup, {CancelAdverTimer{}, StartMasterDownTimer{kMdi100}, RemoveVips{}},
       R::HigherPriorityMaster},
      {"Master_AdvertEqual_LowerAddr", S::Master, dflt, advert(100, 100, kLowerAddr), S::Master,
       {SendAdvert{100}, StartAdverTimer{kSecond}, SendGratuitousArp{}}, R::MasterDown},
      {"Master_AdvertEqual_SameAddr", S::Master, dflt, advert(100, 100, kLocal), S::Master, {},
       R::MasterDown},
      {"Master_AdvertLower", S::Master, dflt, advert(99, 100, kHigherAddr), S::Master,
       {SendAdvert{100}, StartAdverTimer{kSecond}, SendGratuitousArp{}}, R::MasterDown},
      {"Master_AdvertLower_Preempt", S::Master, pre, advert(99), S::Master,
       {SendAdvert{100}, StartAdverTimer{kSecond}, SendGratuitousArp{}}, R::MasterDown},
      {"Master_Stall", S::Master, dflt, ResumedAfterStall{}, S::Backup,
       {CancelAdverTimer{}, RemoveVips{}, StartMasterDownTimer{kSecond + kSkew100}}, R::Stalled},
      {"Master_LinkDown", S::Master, dflt, LinkDown{}, S::Fault,
       {CancelAdverTimer{}, SendAdvert{0}, RemoveVips{}}, R::LinkDown},
      {"Master_LinkUp", S::Master, dflt, LinkUp{}, S::Master, {}, R::MasterDown},
      {"Master_PreemptDelay", S::Master, dflt, PreemptDelayExpired{}, S::Master, {},
       R::MasterDown},
      // Silent while handing over: an advert with our priority would depose the new Master.
      {"Master_HandoverStarted", S::Master, dflt, HandoverStarted{}, S::Master,
       {CancelAdverTimer{}}, R::MasterDown},
      {"Master_HandoverConfirmed_NoneRunning", S::Master, dflt, HandoverConfirmed{}, S::Master,
       {}, R::MasterDown},
      {"Master_HandoverAborted_NoneRunning", S::Master, dflt, HandoverAborted{}, S::Master, {},
       R::MasterDown},
      {"Master_HandoverRequested", S::Master, dflt, HandoverRequested{}, S::Master, {},
       R::MasterDown},
      {"Master_PeerStateComplete", S::Master, dflt, PeerStateComplete{}, S::Master, {},
       R::MasterDown},
      // --- Fault (not in RFC 5798: a monitored interface has no carrier)
      {"Fault_Startup", S::Fault, dflt, Startup{}, S::Fault, {}, R::LinkDown},
      {"Fault_Shutdown", S::Fault, dflt, Shutdown{}, S::Initialize, {}, R::Shutdown},
      {"Fault_MasterDown", S::Fault, dflt, MasterDownTimerExpired{}, S::Fault, {}, R::LinkDown},
      {"Fault_AdverTimer", S::Fault, dflt, AdverTimerExpired{}, S::Fault, {}, R::LinkDown},
      {"Fault_Advert", S::Fault, dflt, advert(0), S::Fault, {}, R::LinkDown},
      {"Fault_Stall", S::Fault, dflt, ResumedAfterStall{}, S::Fault, {}, R::LinkDown},
      {"Fault_LinkDown", S::Fault, dflt, LinkDown{}, S::Fault, {}, R::LinkDown},
      {"Fault_LinkUp", S::Fault, dflt, LinkUp{}, S::Backup, {StartMasterDownTimer{kMdi100}},
       R::LinkUp},
      {"Fault_PreemptDelay", S::Fault, dflt, PreemptDelayExpired{}, S::Fault, {}, R::LinkDown},
      {"Fault_HandoverStarted", S::Fault, dflt, HandoverStarted{}, S::Fault, {}, R::LinkDown},
      {"Fault_HandoverConfirmed", S::Fault, dflt, HandoverConfirmed{}, S::Fault, {},
       R::LinkDown},
      {"Fault_HandoverAborted", S::Fault, dflt, HandoverAborted{}, S::Fault, {}, R::LinkDown},
      {"Fault_PeerStateComplete", S::Fault, dflt, PeerStateComplete{}, S::Fault, {},
       R::LinkDown},
      // Refused: without carrier we cannot serve the group.
      {"Fault_HandoverRequested", S::Fault, dflt, HandoverRequested{}, S::Fault, {},
       R::LinkDown},
  };
  // clang-format on
}

void PrintTo(const Cell& c, std::ostream* os) { *os << c.name; }

class CellTest : public ::testing::TestWithParam<Cell> {};

TEST_P(CellTest, NextStateAndExactActions) {
  const Cell& c = GetParam();
  StateMachine m = machine_in(c.from, c.cfg);
  EXPECT_EQ(m.handle(c.event), c.actions);
  EXPECT_EQ(m.state(), c.to) << to_string(m.state());
  EXPECT_EQ(m.last_reason(), c.reason) << to_string(m.last_reason());
}

INSTANTIATE_TEST_SUITE_P(AllCells, CellTest, ::testing::ValuesIn(cells()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(VrrpStateMachine, TableCoversEveryStateEventCell) {
  std::set<std::pair<State, size_t>> seen;
  for (const Cell& c : cells()) seen.emplace(c.from, c.event.index());
  EXPECT_EQ(seen.size(), 4 * std::variant_size_v<Event>);
}

// A Master that started a handover (HandoverStarted) and what ends it.
StateMachine handing_over(const Config& c) {
  StateMachine m = machine_in(State::Master, c);
  m.handle(HandoverStarted{});
  EXPECT_TRUE(m.handing_over());
  return m;
}

TEST(VrrpStateMachine, HandingOverStepsDownOnThePeersAdvertWhateverItsPriority) {
  StateMachine m = handing_over(config());
  EXPECT_EQ(m.handle(advert(50, 200)),
            (Actions{CancelAdverTimer{}, StartMasterDownTimer{kMdi200}, RemoveVips{}}));
  EXPECT_EQ(m.state(), State::Backup);
  EXPECT_EQ(m.last_reason(), Reason::HandedOver);
  EXPECT_FALSE(m.handing_over());
}

TEST(VrrpStateMachine, HandingOverStepsDownWhenThePeerConfirms) {
  StateMachine m = handing_over(config());
  EXPECT_EQ(m.handle(HandoverConfirmed{}),
            (Actions{CancelAdverTimer{}, StartMasterDownTimer{kMdi100}, RemoveVips{}}));
  EXPECT_EQ(m.state(), State::Backup);
  EXPECT_EQ(m.last_reason(), Reason::HandedOver);
}

TEST(VrrpStateMachine, AbortedHandoverAdvertisesAgainAtOnce) {
  StateMachine m = handing_over(config());
  EXPECT_EQ(m.handle(AdverTimerExpired{}), Actions{}) << "a stale expiry sends nothing";
  EXPECT_EQ(m.handle(HandoverAborted{}), (Actions{SendAdvert{100}, StartAdverTimer{kSecond}}));
  EXPECT_EQ(m.state(), State::Master);
  EXPECT_FALSE(m.handing_over());
  EXPECT_EQ(m.handle(advert(50)), (Actions{SendAdvert{100}, StartAdverTimer{kSecond}, SendGratuitousArp{}}))
      << "a lower-priority advert is the usual two-Master case again";
}

// Two Masters where only one holds the group's state (the other restarted and took over on a
// stalled peer's silence before its first sync finished): the state decides, not priority.
TEST(VrrpStateMachine, TwoMastersTheOneWithoutTheStateGivesWayWhateverItsPriority) {
  StateMachine restarted = machine_in(State::Master, config(150));
  AdvertReceived from_synced = advert(100);
  from_synced.we_hold_state = false;  // we restarted and have not finished syncing
  EXPECT_EQ(restarted.handle(from_synced),
            (Actions{CancelAdverTimer{}, StartMasterDownTimer{3 * kSecond + kSkew150},
                     RemoveVips{}}));
  EXPECT_EQ(restarted.state(), State::Backup);
  EXPECT_EQ(restarted.last_reason(), Reason::PeerHoldsState);

  StateMachine synced = machine_in(State::Master, config(100));
  AdvertReceived from_restarted = advert(150, 100, kHigherAddr);
  from_restarted.sender_holds_state = false;  // it said so on the sync link
  EXPECT_EQ(synced.handle(from_restarted),
            (Actions{SendAdvert{100}, StartAdverTimer{kSecond}, SendGratuitousArp{}}))
      << "stays, asserts itself and re-announces as the tie-break winner does";
  EXPECT_EQ(synced.state(), State::Master);

  StateMachine both = machine_in(State::Master, config(100));
  AdvertReceived neither = advert(150, 100, kHigherAddr);
  neither.we_hold_state = neither.sender_holds_state = false;  // a cold start: RFC 5798
  both.handle(neither);
  EXPECT_EQ(both.last_reason(), Reason::HigherPriorityMaster);
}

TEST(VrrpStateMachine, OwnLoopedBackAdvertDoesNotEndAHandover) {
  StateMachine m = handing_over(config());
  EXPECT_EQ(m.handle(advert(100, 100, kLocal)), Actions{});
  EXPECT_TRUE(m.handing_over());
}

// With preempt, the node that handed over accepts the lower-priority Master it chose, until it
// is Master again.
TEST(VrrpStateMachine, NoPreemptionBackAfterAHandover) {
  StateMachine m = handing_over(config(150, true));
  m.handle(HandoverConfirmed{});
  EXPECT_EQ(m.handle(advert(100)), Actions{StartMasterDownTimer{
                                       3 * kSecond + kSkew150}});
  m.handle(MasterDownTimerExpired{});  // the peer died
  ASSERT_EQ(m.state(), State::Master);
  m.handle(advert(100, 100, kHigherAddr));  // the usual rules again: lower priority, we stay
  EXPECT_EQ(m.state(), State::Master);
  m.handle(advert(200));
  ASSERT_EQ(m.state(), State::Backup);
  EXPECT_EQ(m.handle(advert(100)), Actions{}) << "preempting a lower-priority Master again";
}

// Rejoin: a node with preempt that waits for the peer's state accepts a lower-priority Master
// until its first complete sync, then preempts as usual.
TEST(VrrpStateMachine, PreemptWaitsForThePeersState) {
  Config c = config(150, true);
  c.preempt_waits_for_state = true;
  StateMachine m(c);
  m.handle(Startup{});
  EXPECT_STREQ(m.preempt_hold(), "state");
  EXPECT_EQ(m.handle(advert(100)), Actions{StartMasterDownTimer{3 * kSecond + kSkew150}})
      << "accepted: our table is not complete yet";
  EXPECT_EQ(m.handle(PeerStateComplete{}), Actions{});
  EXPECT_STREQ(m.preempt_hold(), "");
  EXPECT_EQ(m.handle(advert(100)), Actions{}) << "discarded: we preempt";
  m.handle(MasterDownTimerExpired{});
  EXPECT_EQ(m.state(), State::Master);
}

// The driver gives a silent Master's late adverts some grace (vrrp_group.cpp) unless the
// Backup is preempting: then the silence is its own doing. Seen in the lab: a rejoined node
// that took every discarded advert for a late one waited for the next reconciliation round
// (30 s) to preempt.
TEST(VrrpStateMachine, PreemptingIsToldOnlyWhileDiscardingALowerMaster) {
  StateMachine m(config(150, true));
  m.handle(Startup{});
  EXPECT_FALSE(m.preempting()) << "no Master heard yet";
  m.handle(advert(200));
  EXPECT_FALSE(m.preempting()) << "a higher-priority Master is followed, not preempted";
  m.handle(advert(100));
  EXPECT_TRUE(m.preempting());
  m.handle(advert(0));
  EXPECT_FALSE(m.preempting()) << "a Master leaving is not preempted";
  m.handle(advert(100));
  m.handle(MasterDownTimerExpired{});
  ASSERT_EQ(m.state(), State::Master);
  EXPECT_FALSE(m.preempting()) << "cleared by the state change";

  StateMachine no_preempt(config(150, false));
  no_preempt.handle(Startup{});
  no_preempt.handle(advert(100));
  EXPECT_FALSE(no_preempt.preempting()) << "without Preempt_Mode a lower Master is followed";
}

TEST(VrrpStateMachine, PreemptHoldNamesItsCause) {
  Config c = config(150, true);
  c.preempt_waits_for_state = true;
  c.preempt_delay = 30 * kSecond;
  StateMachine m(c);
  m.handle(Startup{});
  EXPECT_STREQ(m.preempt_hold(), "delay");
  m.handle(PreemptDelayExpired{});
  EXPECT_STREQ(m.preempt_hold(), "state");
  m.handle(PeerStateComplete{});
  EXPECT_STREQ(m.preempt_hold(), "");
  StateMachine no_preempt(config(150, false));
  no_preempt.handle(Startup{});
  EXPECT_STREQ(no_preempt.preempt_hold(), "") << "nothing held without preempt";
}

TEST(VrrpStateMachine, MasterToBackupLearnsMasterAdverInterval) {
  StateMachine m = machine_in(State::Master, config());
  m.handle(advert(150, 200));
  EXPECT_EQ(m.master_adver_interval_cs(), 200);
  // Startup again after a shutdown resets Master_Adver_Interval to Advertisement_Interval.
  m.handle(Shutdown{});
  EXPECT_EQ(m.handle(Startup{}), (Actions{StartMasterDownTimer{kMdi100}, RemoveVips{}}));
  EXPECT_EQ(m.master_adver_interval_cs(), 100);
}

TEST(VrrpStateMachine, BackupPrio0UsesLearnedIntervalAndLocalPriority) {
  StateMachine m = machine_in(State::Backup, config(200));
  m.handle(advert(250, 50));
  // Skew_Time = (256 - 200) * 50 cs / 256 = 10.9375 cs, with the local priority 200.
  EXPECT_EQ(m.handle(advert(0, 50)), (Actions{StartMasterDownTimer{microseconds{109'375}}}));
}

TEST(VrrpStateMachine, Names) {
  EXPECT_STREQ(to_string(State::Initialize), "Initialize");
  EXPECT_STREQ(to_string(State::Backup), "Backup");
  EXPECT_STREQ(to_string(State::Master), "Master");
  EXPECT_STREQ(to_string(State::Fault), "Fault");
  EXPECT_STREQ(to_string(Reason::LinkDown), "link_down");
  EXPECT_STREQ(to_string(Reason::None), "none");
  EXPECT_STREQ(to_string(Reason::Startup), "startup");
  EXPECT_STREQ(to_string(Reason::MasterDown), "master_down");
  EXPECT_STREQ(to_string(Reason::HigherPriorityMaster), "higher_priority_master");
  EXPECT_STREQ(to_string(Reason::PeerHoldsState), "peer_holds_state");
  EXPECT_STREQ(to_string(Reason::Shutdown), "shutdown");
  EXPECT_STREQ(event_name(Startup{}), "Startup");
  EXPECT_STREQ(event_name(Shutdown{}), "Shutdown");
  EXPECT_STREQ(event_name(MasterDownTimerExpired{}), "MasterDownTimerExpired");
  EXPECT_STREQ(event_name(AdverTimerExpired{}), "AdverTimerExpired");
  EXPECT_STREQ(event_name(advert(1)), "AdvertReceived");
}

// ================================ Part 2: timer arithmetic ===================================

struct TimerCase {
  uint8_t priority;
  uint16_t interval_cs;
  int64_t skew_us;
  int64_t master_down_us;
};

class TimerTest : public ::testing::TestWithParam<TimerCase> {};

TEST_P(TimerTest, SkewAndMasterDownInterval) {
  const TimerCase& t = GetParam();
  StateMachine m(config(t.priority, false, t.interval_cs));
  EXPECT_EQ(m.skew_time(), microseconds{t.skew_us});
  EXPECT_EQ(m.master_down_interval(), microseconds{t.master_down_us});
}

// Skew_Time = (256 - p) * interval_cs * 10000 / 256 us, truncated; MDI = 3 * interval + skew.
INSTANTIATE_TEST_SUITE_P(Rfc5798, TimerTest,
                         ::testing::Values(TimerCase{100, 100, 609'375, 3'609'375},  // 60.9375 cs
                                           TimerCase{200, 100, 218'750, 3'218'750},
                                           TimerCase{255, 100, 3'906, 3'003'906},
                                           TimerCase{1, 100, 996'093, 3'996'093},
                                           TimerCase{254, 50, 3'906, 1'503'906},
                                           TimerCase{100, 1, 6'093, 36'093},
                                           TimerCase{100, 4095, 24'953'906, 147'803'906}));

// ================================ Part 3: fake clock ==========================================

using Sent = std::vector<std::pair<microseconds, uint8_t>>;

struct Node {
  explicit Node(const Config& c) : sm(c) {}
  StateMachine sm;
  std::optional<microseconds> adver_deadline;        // Adver_Timer
  std::optional<microseconds> master_down_deadline;  // Master_Down_Timer
  std::optional<microseconds> preempt_deadline;      // preempt delay
  Sent adverts;                                      // (time sent, priority)
  std::vector<std::pair<microseconds, State>> transitions;
  bool vips_held = false;
  int garps = 0;
  bool frozen = false;  // a stopped process: no timers fire, adverts to it are lost
};

// Several nodes on one simulated link with a manual clock. Adverts are delivered with zero
// delay, after the sender's action list has been fully performed (a FIFO, no reentrancy).
class FakeNet {
 public:
  size_t add(const Config& c) {
    nodes_.push_back(std::make_unique<Node>(c));
    return nodes_.size() - 1;
  }
  Node& operator[](size_t i) { return *nodes_[i]; }
  microseconds now() const { return now_; }
  void set_link(bool up) { link_up_ = up; }
  void freeze(size_t i) { nodes_[i]->frozen = true; }
  void thaw(size_t i) { nodes_[i]->frozen = false; }

  // Delivers an event to node i now and runs until nothing more happens at this instant.
  void post(size_t i, const Event& e) {
    queue_.emplace_back(i, e);
    while (!queue_.empty()) {
      auto [to, ev] = queue_.front();
      queue_.pop_front();
      dispatch(to, ev);
    }
  }
  // An advert from a scripted peer outside the net.
  void inject(size_t to, uint8_t priority, uint16_t interval_cs = 100, IpAddress src = kLowerAddr) {
    post(to, AdvertReceived{priority, interval_cs, src});
  }

  // Fires every timer due up to now + d, in deadline order (ties: lower node index first).
  void advance(microseconds d) {
    const microseconds target = now_ + d;
    for (;;) {
      std::optional<microseconds>* next = nullptr;
      size_t owner = 0;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i]->frozen) continue;
        for (auto* t : {&nodes_[i]->master_down_deadline, &nodes_[i]->adver_deadline,
                        &nodes_[i]->preempt_deadline}) {
          if (*t && **t <= target && (!next || **t < **next)) {
            next = t;
            owner = i;
          }
        }
      }
      if (!next) break;
      now_ = **next;
      const bool adver = next == &nodes_[owner]->adver_deadline;
      const bool preempt = next == &nodes_[owner]->preempt_deadline;
      next->reset();
      if (adver)
        post(owner, AdverTimerExpired{});
      else if (preempt)
        post(owner, PreemptDelayExpired{});
      else
        post(owner, MasterDownTimerExpired{});
    }
    now_ = target;
  }

  int masters() const {
    int n = 0;
    for (const auto& node : nodes_) n += node->sm.state() == State::Master;
    return n;
  }

 private:
  void dispatch(size_t i, const Event& e) {
    Node& n = *nodes_[i];
    if (n.frozen) return;
    const State before = n.sm.state();
    for (const Action& a : n.sm.handle(e)) perform(i, a);
    if (n.sm.state() != before) n.transitions.emplace_back(now_, n.sm.state());
    check_invariants(n);
  }

  void perform(size_t i, const Action& action) {
    Node& n = *nodes_[i];
    std::visit(
        [&](const auto& a) {
          using A = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<A, SendAdvert>) {
            n.adverts.emplace_back(now_, a.priority);
            for (size_t j = 0; link_up_ && j < nodes_.size(); ++j) {
              const Config& c = n.sm.config();
              if (j != i)
                queue_.emplace_back(
                    j, AdvertReceived{a.priority, c.advert_interval_cs, c.primary_address});
            }
          } else if constexpr (std::is_same_v<A, StartAdverTimer>) {
            n.adver_deadline = now_ + a.after;
          } else if constexpr (std::is_same_v<A, StartMasterDownTimer>) {
            n.master_down_deadline = now_ + a.after;
          } else if constexpr (std::is_same_v<A, CancelAdverTimer>) {
            n.adver_deadline.reset();
          } else if constexpr (std::is_same_v<A, CancelMasterDownTimer>) {
            n.master_down_deadline.reset();
          } else if constexpr (std::is_same_v<A, AddVips>) {
            n.vips_held = true;
          } else if constexpr (std::is_same_v<A, RemoveVips>) {
            n.vips_held = false;
          } else if constexpr (std::is_same_v<A, StartPreemptDelayTimer>) {
            n.preempt_deadline = now_ + a.after;
          } else {
            static_assert(std::is_same_v<A, SendGratuitousArp>);
            EXPECT_TRUE(n.vips_held) << "GARP for VIPs we do not hold";
            ++n.garps;
          }
        },
        action);
  }

  // After every event: exactly the state's timer runs, and only a Master holds the VIPs.
  static void check_invariants(const Node& n) {
    const State s = n.sm.state();
    EXPECT_EQ(n.adver_deadline.has_value(), s == State::Master && !n.sm.handing_over())
        << to_string(s);
    EXPECT_EQ(n.master_down_deadline.has_value(), s == State::Backup) << to_string(s);
    EXPECT_EQ(n.vips_held, s == State::Master) << to_string(s);
  }

  microseconds now_{0};
  std::vector<std::unique_ptr<Node>> nodes_;
  std::deque<std::pair<size_t, Event>> queue_;
  bool link_up_ = true;
};

TEST(VrrpFakeClock, BackupBecomesMasterExactlyAtMasterDownInterval) {
  FakeNet net;
  const size_t a = net.add(config());
  net.post(a, Startup{});
  EXPECT_FALSE(net[a].vips_held);
  net.advance(kMdi100 - kOneUs);
  EXPECT_EQ(net[a].sm.state(), State::Backup);
  EXPECT_TRUE(net[a].adverts.empty());
  net.advance(kOneUs);
  EXPECT_EQ(net[a].sm.state(), State::Master);
  EXPECT_EQ(net[a].sm.last_reason(), Reason::MasterDown);
  EXPECT_EQ(net[a].adverts, (Sent{{kMdi100, uint8_t{100}}}));
  EXPECT_TRUE(net[a].vips_held);
  EXPECT_EQ(net[a].garps, 1);
}

TEST(VrrpFakeClock, AdvertsEveryIntervalKeepBackupForAnHour) {
  FakeNet net;
  const size_t a = net.add(config(100, true));
  net.post(a, Startup{});
  for (int i = 0; i < 3600; ++i) {
    net.advance(kSecond);
    net.inject(a, 150);
  }
  EXPECT_EQ(net[a].sm.state(), State::Backup);
  EXPECT_TRUE(net[a].adverts.empty());
  EXPECT_EQ(net[a].garps, 0);
  EXPECT_EQ(net[a].transitions.size(), 1u);
  EXPECT_EQ(net[a].master_down_deadline, net.now() + kMdi100);
}

TEST(VrrpFakeClock, MasterAdvertisesAtEveryInterval) {
  FakeNet net;
  const size_t a = net.add(config(255, false, 30));
  net.post(a, Startup{});
  EXPECT_EQ(net[a].sm.state(), State::Master);
  net.advance(microseconds{300'000 * 100});  // 100 intervals of 30 cs
  ASSERT_EQ(net[a].adverts.size(), 101u);
  for (size_t k = 0; k < net[a].adverts.size(); ++k) {
    const auto at = microseconds{300'000} * static_cast<int64_t>(k);
    EXPECT_EQ(net[a].adverts[k], std::make_pair(at, uint8_t{255}));
  }
}

TEST(VrrpFakeClock, TakeoverAtMasterDownIntervalAfterLastAdvert) {
  FakeNet net;
  const size_t a = net.add(config());
  net.post(a, Startup{});
  // The Master advertises every 50 cs: Master_Down_Interval = 1.5 s + 30.46875 cs.
  const microseconds mdi50{1'804'687};
  for (int i = 0; i < 20; ++i) {
    net.advance(microseconds{500'000});
    net.inject(a, 200, 50);
  }
  const microseconds last = net.now();
  net.advance(mdi50 - kOneUs);
  EXPECT_EQ(net[a].sm.state(), State::Backup);
  net.advance(kOneUs);
  EXPECT_EQ(net[a].sm.state(), State::Master);
  EXPECT_EQ(net[a].transitions.back(), std::make_pair(last + mdi50, State::Master));
  // Then it advertises at its own Advertisement_Interval.
  net.advance(3 * kSecond);
  EXPECT_EQ(net[a].adverts.size(), 4u);
  EXPECT_EQ(net[a].adverts.back().first, last + mdi50 + 3 * kSecond);
}

TEST(VrrpFakeClock, Priority0AdvertTakeoverAfterSkewTime) {
  FakeNet net;
  const size_t a = net.add(config());
  net.post(a, Startup{});
  for (int i = 0; i < 3; ++i) {
    net.advance(kSecond);
    net.inject(a, 200);
  }
  net.advance(kSecond / 2);
  net.inject(a, 0);
  const microseconds t0 = net.now();
  net.advance(kSkew100 - kOneUs);
  EXPECT_EQ(net[a].sm.state(), State::Backup);
  net.advance(kOneUs);
  EXPECT_EQ(net[a].sm.state(), State::Master);
  EXPECT_EQ(net[a].adverts.front(), std::make_pair(t0 + kSkew100, uint8_t{100}));
}

TEST(VrrpFakeClock, TwoNodesConvergeToHigherPriorityMaster) {
  FakeNet net;
  const size_t hi = net.add(config(200, false, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.post(lo, Startup{});
  net.post(hi, Startup{});
  net.advance(microseconds{3'218'750});  // priority 200: MDI = 3 s + 21.875 cs
  EXPECT_EQ(net[hi].sm.state(), State::Master);
  EXPECT_EQ(net[lo].sm.state(), State::Backup);
  for (int i = 0; i < 600; ++i) {
    net.advance(kSecond / 10);
    ASSERT_EQ(net.masters(), 1);
  }
  EXPECT_EQ(net[hi].sm.state(), State::Master);
  EXPECT_TRUE(net[lo].adverts.empty());
  EXPECT_EQ(net[hi].transitions.size(), 2u);  // Backup, Master
  EXPECT_EQ(net[lo].transitions.size(), 1u);  // Backup
}

TEST(VrrpFakeClock, PartitionGivesTwoMastersHealingLeavesHigherAddress) {
  FakeNet net;
  const size_t a = net.add(config(100, false, 100, ip("192.0.2.1")));
  const size_t b = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.set_link(false);
  net.post(a, Startup{});
  net.post(b, Startup{});
  net.advance(10 * kSecond);
  EXPECT_EQ(net.masters(), 2);  // VRRP cannot tell a partition from a dead peer
  net.set_link(true);
  net.advance(kSecond);  // both advertise once: equal priority, the higher address wins
  EXPECT_EQ(net[b].sm.state(), State::Master);
  EXPECT_EQ(net[a].sm.state(), State::Backup);
  EXPECT_EQ(net[a].sm.last_reason(), Reason::HigherPriorityMaster);
  for (int i = 0; i < 100; ++i) {
    net.advance(kSecond / 3);
    ASSERT_EQ(net.masters(), 1);
  }
  EXPECT_EQ(net[b].sm.state(), State::Master);
}

TEST(VrrpFakeClock, PartitionHealingLeavesHigherPriority) {
  FakeNet net;
  const size_t hi = net.add(config(150, false, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.set_link(false);
  net.post(hi, Startup{});
  net.post(lo, Startup{});
  net.advance(10 * kSecond);
  EXPECT_EQ(net.masters(), 2);
  net.set_link(true);
  net.advance(kSecond);
  EXPECT_EQ(net[hi].sm.state(), State::Master);
  EXPECT_EQ(net[lo].sm.state(), State::Backup);
}

// IPv6 adverts: the primary addresses are link-local (RFC 5798 5.1.2.1), and the tie-break
// compares all 16 bytes. fe80::1:0:0:1 is greater than fe80::2 only by its upper half.
TEST(VrrpFakeClock, PartitionHealingWithLinkLocalAddressesLeavesTheHigherOne) {
  FakeNet net;
  const size_t a = net.add(config(100, false, 100, ip("fe80::2")));
  const size_t b = net.add(config(100, false, 100, ip("fe80::1:0:0:1")));
  net.set_link(false);
  net.post(a, Startup{});
  net.post(b, Startup{});
  net.advance(10 * kSecond);
  ASSERT_EQ(net.masters(), 2);
  net.set_link(true);
  net.advance(kSecond);
  EXPECT_EQ(net[b].sm.state(), State::Master);
  EXPECT_EQ(net[a].sm.state(), State::Backup);
  for (int i = 0; i < 30; ++i) {
    net.advance(kSecond / 3);
    ASSERT_EQ(net.masters(), 1);
  }
}

// The machine never lets an address of the other family win the tie-break: the driver must
// hand it the peer's address of the family of our primary (vrrp_group.cpp hands it the
// peer's address on the first interface, compared with ours there).
TEST(VrrpStateMachine, TieBreakNeverComparesAcrossFamilies) {
  StateMachine v4(config(100, false, 100, ip("192.0.2.10")));
  v4.handle(Startup{});
  v4.handle(MasterDownTimerExpired{});
  ASSERT_EQ(v4.state(), State::Master);
  v4.handle(advert(100, 100, ip("fe80::ffff")));
  EXPECT_EQ(v4.state(), State::Master);

  StateMachine v6(config(100, false, 100, ip("fe80::2")));
  v6.handle(Startup{});
  v6.handle(MasterDownTimerExpired{});
  v6.handle(advert(100, 100, ip("192.0.2.1")));
  EXPECT_EQ(v6.state(), State::Master);
  v6.handle(advert(100, 100, ip("fe80::3")));  // same family, greater: steps down
  EXPECT_EQ(v6.state(), State::Backup);
  EXPECT_EQ(v6.last_reason(), Reason::HigherPriorityMaster);
}

// Two Masters after a partition (or a freeze): the first advert from the loser makes the
// winner assert itself and re-announce the VIPs at once, and the loser steps down on that
// advert, without waiting for the winner's next Adver_Timer.
TEST(VrrpFakeClock, TwoMastersResolveAtOnceAndTheWinnerReannounces) {
  FakeNet net;
  const size_t hi = net.add(config(150, false, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.set_link(false);
  net.post(hi, Startup{});
  net.post(lo, Startup{});
  net.advance(10 * kSecond + kSecond / 2);  // mid-interval for both
  ASSERT_EQ(net.masters(), 2);
  net.set_link(true);
  const int garps_before = net[hi].garps;
  const size_t hi_adverts = net[hi].adverts.size();
  net.post(lo, AdverTimerExpired{});  // lo's advert reaches hi first
  EXPECT_EQ(net[hi].sm.state(), State::Master);
  EXPECT_EQ(net[lo].sm.state(), State::Backup);
  EXPECT_EQ(net[hi].garps, garps_before + 1) << "the winner re-announced the VIPs";
  ASSERT_EQ(net[hi].adverts.size(), hi_adverts + 1);
  EXPECT_EQ(net[hi].adverts.back().first, net.now()) << "at once, not at its next interval";
}

// hi is Master and freezes (its process stopped) long enough for lo to take over. When hi
// resumes it steps down before anything else, so lo stays Master: no second outage, and the
// flows lo holds (opened during the freeze) are not lost to the tie-break.
TEST(VrrpFakeClock, MasterResumingAfterAStallStepsDownToTheNewMaster) {
  FakeNet net;
  const size_t hi = net.add(config(150, false, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.post(hi, Startup{});
  net.post(lo, Startup{});
  net.advance(10 * kSecond);
  ASSERT_EQ(net[hi].sm.state(), State::Master);
  net.freeze(hi);
  net.advance(5 * kSecond);  // lo's Master_Down_Interval (3.6 s) runs out meanwhile
  ASSERT_EQ(net[lo].sm.state(), State::Master);
  net.thaw(hi);
  net.post(hi, ResumedAfterStall{});  // what the driver delivers first on waking
  EXPECT_EQ(net[hi].sm.state(), State::Backup);
  EXPECT_EQ(net[hi].sm.last_reason(), Reason::Stalled);
  EXPECT_FALSE(net[hi].vips_held);
  for (int i = 0; i < 30; ++i) {
    net.advance(kSecond / 3);
    ASSERT_EQ(net.masters(), 1);
  }
  EXPECT_EQ(net[lo].sm.state(), State::Master) << "no second outage";
}

// A stalled Master whose peer did not take over (dead too) resumes Master after one interval
// and Skew_Time.
TEST(VrrpFakeClock, StalledMasterWithNoNewMasterTakesBackWithinOneInterval) {
  FakeNet net;
  const size_t hi = net.add(config(150, false, 100, ip("192.0.2.1")));
  net.post(hi, Startup{});
  net.advance(10 * kSecond);
  ASSERT_EQ(net[hi].sm.state(), State::Master);
  net.post(hi, ResumedAfterStall{});
  EXPECT_EQ(net[hi].sm.state(), State::Backup);
  net.advance(kSecond + kSkew150);
  EXPECT_EQ(net[hi].sm.state(), State::Master);
}

// The Master loses carrier on a monitored interface: it goes to Fault with a priority-0
// advert, so the Backup takes over after Skew_Time, not Master_Down_Interval. With carrier
// back it is a Backup and, without preemption, stays one.
// fwhactl switchover: the Master goes silent, the peer takes over on request, its first
// advert ends the handover; never two Masters, never none for longer than a round trip (here
// zero), and the former Master (preempt, higher priority) does not take the group back.
TEST(VrrpFakeClock, SwitchoverMovesTheGroupAtOnceAndSticks) {
  FakeNet net;
  const size_t hi = net.add(config(150, true, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.post(hi, Startup{});
  net.post(lo, Startup{});
  net.advance(10 * kSecond + kSecond / 2);
  ASSERT_EQ(net[hi].sm.state(), State::Master);
  const microseconds at = net.now();
  net.post(hi, HandoverStarted{});
  EXPECT_EQ(net[hi].sm.state(), State::Master) << "keeps its VIPs until the peer is Master";
  net.post(lo, HandoverRequested{});
  EXPECT_EQ(net[lo].transitions.back(), std::make_pair(at, State::Master));
  EXPECT_EQ(net[hi].transitions.back(), std::make_pair(at, State::Backup));
  EXPECT_EQ(net[hi].sm.last_reason(), Reason::HandedOver);
  net.post(hi, HandoverConfirmed{});  // the answer comes after the advert: nothing to do
  EXPECT_EQ(net[hi].sm.state(), State::Backup);
  for (int i = 0; i < 90; ++i) {
    net.advance(kSecond / 3);
    ASSERT_EQ(net.masters(), 1);
  }
  EXPECT_EQ(net[lo].sm.state(), State::Master);
}

TEST(VrrpFakeClock, CarrierLossHandsOverWithinSkewTime) {
  FakeNet net;
  const size_t hi = net.add(config(150, false, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.post(hi, Startup{});
  net.post(lo, Startup{});
  net.advance(10 * kSecond + kSecond / 2);
  ASSERT_EQ(net[hi].sm.state(), State::Master);
  const microseconds down_at = net.now();
  net.post(hi, LinkDown{});
  EXPECT_EQ(net[hi].sm.state(), State::Fault);
  EXPECT_EQ(net[hi].adverts.back(), std::make_pair(down_at, uint8_t{0}));
  net.advance(kSkew100 - kOneUs);
  EXPECT_EQ(net[lo].sm.state(), State::Backup);
  net.advance(kOneUs);
  EXPECT_EQ(net[lo].sm.state(), State::Master) << "after Skew_Time";
  net.advance(5 * kSecond);
  net.post(hi, LinkUp{});
  EXPECT_EQ(net[hi].sm.state(), State::Backup);
  for (int i = 0; i < 30; ++i) {
    net.advance(kSecond / 3);
    ASSERT_EQ(net.masters(), 1);
  }
  EXPECT_EQ(net[lo].sm.state(), State::Master);
}

// hi (preempt, 30 s preempt delay) restarts while lo is Master: it stays Backup for the
// delay (time for its state to arrive), then preempts as usual.
TEST(VrrpFakeClock, PreemptDelayKeepsARestartedNodeBackupForTheDelay) {
  FakeNet net;
  Config hc = config(200, true, 100, ip("192.0.2.1"));
  hc.preempt_delay = 30 * kSecond;
  const size_t hi = net.add(hc);
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.post(lo, Startup{});
  net.advance(10 * kSecond);
  ASSERT_EQ(net[lo].sm.state(), State::Master);
  net.post(hi, Startup{});
  net.advance(29 * kSecond);
  EXPECT_EQ(net[hi].sm.state(), State::Backup) << "within the preempt delay";
  EXPECT_EQ(net[lo].sm.state(), State::Master);
  net.advance(6 * kSecond);  // delay over, then a Master_Down_Interval of discarded adverts
  EXPECT_EQ(net[hi].sm.state(), State::Master);
  EXPECT_EQ(net[lo].sm.state(), State::Backup);
}

// hi (priority 200) is Master, shuts down gracefully (lo takes over within Skew_Time), then
// starts again at t = 20 s. Returns the net after 100 s.
FakeNet restart_scenario(bool preempt) {
  FakeNet net;
  const size_t hi = net.add(config(200, preempt, 100, ip("192.0.2.1")));
  const size_t lo = net.add(config(100, false, 100, ip("192.0.2.2")));
  net.post(hi, Startup{});
  net.post(lo, Startup{});
  net.advance(10 * kSecond);
  EXPECT_EQ(net[hi].sm.state(), State::Master);
  net.post(hi, Shutdown{});
  EXPECT_EQ(net[hi].adverts.back(), std::make_pair(10 * kSecond, uint8_t{0}));
  net.advance(kSkew100 - kOneUs);
  EXPECT_EQ(net[lo].sm.state(), State::Backup);
  net.advance(kOneUs);
  EXPECT_EQ(net[lo].sm.state(), State::Master);
  net.advance(20 * kSecond - net.now());
  net.post(hi, Startup{});
  net.advance(100 * kSecond - net.now());
  EXPECT_EQ(net.masters(), 1);
  return net;
}

TEST(VrrpFakeClock, PreemptOnHigherPriorityNodeTakesBackAfterMasterDownInterval) {
  FakeNet net = restart_scenario(true);
  EXPECT_EQ(net[0].sm.state(), State::Master);
  EXPECT_EQ(net[1].sm.state(), State::Backup);
  EXPECT_EQ(net[1].sm.last_reason(), Reason::HigherPriorityMaster);
  // hi discards lo's lower-priority adverts, so its Master_Down_Timer runs out.
  EXPECT_EQ(net[0].transitions.back(),
            std::make_pair(20 * kSecond + microseconds{3'218'750}, State::Master));
}

TEST(VrrpFakeClock, PreemptOffHigherPriorityNodeStaysBackup) {
  FakeNet net = restart_scenario(false);
  EXPECT_EQ(net[0].sm.state(), State::Backup);
  EXPECT_EQ(net[1].sm.state(), State::Master);
  EXPECT_EQ(net[0].transitions.back(), std::make_pair(20 * kSecond, State::Backup));
}

}  // namespace
}  // namespace fwha::vrrp
