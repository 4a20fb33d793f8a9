// FlowEntry <-> protobuf: round trips keep every field (NAT binding included); every invalid
// field a peer could send is rejected with an error naming it.
#include <gtest/gtest.h>

#include <cstring>

#include "flow_samples.h"
#include "sync/flow_wire.h"

namespace fwha::sync {
namespace {

TEST(FlowWire, RoundTripKeepsEveryField) {
  for (const FlowEntry& e : {test::snat_tcp_flow(), test::icmpv6_flow()}) {
    for (auto kind : {FlowChangeKind::New, FlowChangeKind::Update, FlowChangeKind::Destroy}) {
      FlowChange c{kind, e};
      wire::FlowChange w;
      to_wire(c, &w);
      // through bytes, as on the link
      wire::FlowChange parsed;
      ASSERT_TRUE(parsed.ParseFromString(w.SerializeAsString()));
      std::string error;
      auto back = from_wire(parsed, error);
      ASSERT_TRUE(back) << error;
      EXPECT_EQ(*back, c);
    }
  }
}

// A creation on the Master travels as such; a repair's snapshot (New without it) and other
// kinds never ask the sink to replace its copy.
TEST(FlowWire, CreationMarkTravelsOnlyWithNew) {
  for (auto kind : {FlowChangeKind::New, FlowChangeKind::Update, FlowChangeKind::Destroy}) {
    for (bool replaces : {false, true}) {
      FlowChange c{kind, test::snat_tcp_flow()};
      c.replaces_copy = replaces;
      wire::FlowChange w;
      to_wire(c, &w);
      std::string error;
      auto back = from_wire(w, error);
      ASSERT_TRUE(back) << error;
      EXPECT_EQ(back->replaces_copy, replaces && kind == FlowChangeKind::New)
          << to_string(kind) << " " << replaces;
    }
  }
}

TEST(FlowWire, NatBindingTravelsInTheReplyTuple) {
  wire::Flow w;
  to_wire(test::snat_tcp_flow(40000, 61234), &w);
  EXPECT_EQ(w.reply().dst(), std::string("\xc6\x33\x64\x01", 4));  // 198.51.100.1
  EXPECT_EQ(w.reply().dst_port(), 61234u);
}

// A flow without NAT: its reply is the mirror of its original, and a peer that said
// implied_reply gets it without the reply tuple.
FlowEntry plain_udp_flow() {
  FlowEntry e = test::snat_tcp_flow();
  e.original.l4proto = IPPROTO_UDP;
  e.reply = mirror(e.original);
  e.status = flow_status::kSeenReply | flow_status::kConfirmed;
  e.tcp_state = 0;
  return e;
}

TEST(FlowWire, AMirroredReplyStaysOffTheWireWhenThePeerImpliesIt) {
  const FlowEntry e = plain_udp_flow();
  EXPECT_EQ(e.reply.src, e.original.dst);
  EXPECT_EQ(e.reply.dst_port, e.original.src_port);
  wire::Flow implied, explicit_reply;
  to_wire(e, &implied, /*imply_reply=*/true);
  to_wire(e, &explicit_reply, /*imply_reply=*/false);
  EXPECT_FALSE(implied.has_reply());
  EXPECT_TRUE(explicit_reply.has_reply());
  EXPECT_LT(implied.ByteSizeLong() + 20, explicit_reply.ByteSizeLong());
  for (const wire::Flow* w : {&implied, &explicit_reply}) {
    wire::Flow parsed;
    ASSERT_TRUE(parsed.ParseFromString(w->SerializeAsString()));
    std::string error;
    auto back = from_wire(parsed, error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(*back, e);
  }
}

TEST(FlowWire, ANatBindingOrAnIcmpReplyIsSentEvenWhenImplied) {
  for (const FlowEntry& e : {test::snat_tcp_flow(), test::icmpv6_flow()}) {
    wire::FlowChange w;
    to_wire(FlowChange{FlowChangeKind::New, e}, &w, /*imply_reply=*/true);
    EXPECT_TRUE(w.flow().has_reply()) << "its reply is not the mirror of its original";
    std::string error;
    auto back = from_wire(w, error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(back->entry, e);
  }
}

struct BadCase {
  const char* name;
  void (*mutate)(wire::FlowChange&);
  const char* expected_in_error;
};

class FlowWireRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(FlowWireRejects, InvalidFieldIsNamed) {
  wire::FlowChange w;
  to_wire(FlowChange{FlowChangeKind::New, test::snat_tcp_flow()}, &w);
  GetParam().mutate(w);
  std::string error;
  EXPECT_FALSE(from_wire(w, error));
  EXPECT_NE(error.find(GetParam().expected_in_error), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(
    AllFields, FlowWireRejects,
    ::testing::Values(
        BadCase{"kind", [](wire::FlowChange& w) { w.set_kind(wire::FlowChange::KIND_UNSPECIFIED); },
                "unknown kind"},
        BadCase{"no_flow", [](wire::FlowChange& w) { w.clear_flow(); }, "without a flow"},
        BadCase{"no_original", [](wire::FlowChange& w) { w.mutable_flow()->clear_original(); },
                "without original"},
        BadCase{"addr_len",
                [](wire::FlowChange& w) { w.mutable_flow()->mutable_original()->set_src("abc"); },
                "original address"},
        BadCase{"mixed_family",
                [](wire::FlowChange& w) {
                  w.mutable_flow()->mutable_reply()->set_dst(std::string(16, '\1'));
                },
                "different families"},
        BadCase{"port",
                [](wire::FlowChange& w) {
                  w.mutable_flow()->mutable_original()->set_src_port(70000);
                },
                "src_port 70000"},
        BadCase{"proto",
                [](wire::FlowChange& w) { w.mutable_flow()->mutable_reply()->set_l4proto(300); },
                "l4proto"},
        BadCase{"proto_mismatch",
                [](wire::FlowChange& w) { w.mutable_flow()->mutable_reply()->set_l4proto(17); },
                "disagree"},
        BadCase{"zone", [](wire::FlowChange& w) { w.mutable_flow()->set_zone(65536); }, "zone"},
        BadCase{"tcp_state", [](wire::FlowChange& w) { w.mutable_flow()->set_tcp_state(42); },
                "tcp_state"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(FlowWire, TcpStateOnUdpIsRejected) {
  FlowEntry e = test::snat_tcp_flow();
  e.original.l4proto = e.reply.l4proto = IPPROTO_UDP;
  wire::Flow w;
  to_wire(e, &w);
  std::string error;
  EXPECT_FALSE(from_wire(w, error));
  EXPECT_NE(error.find("non-TCP"), std::string::npos);
}

}  // namespace
}  // namespace fwha::sync

namespace fwha::sync {
namespace {

FlowEntry with_optional_state() {
  FlowEntry e = test::snat_tcp_flow();
  e.labels = {0x8, 0x8000000000000000ULL};
  std::strcpy(e.helper.data(), "ftp");
  e.seqadj_original = {1000, 0, 2};
  e.seqadj_reply = {0, 0, 0};
  return e;
}

TEST(FlowWireOptional, LabelsHelperSeqAdjRoundTrip) {
  FlowChange c{FlowChangeKind::New, with_optional_state()};
  wire::FlowChange w;
  to_wire(c, &w);
  wire::FlowChange parsed;
  ASSERT_TRUE(parsed.ParseFromString(w.SerializeAsString()));
  std::string error;
  auto back = from_wire(parsed, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(*back, c);
}

TEST(FlowWireOptional, AbsentWhenUnused) {
  wire::Flow w;
  to_wire(test::snat_tcp_flow(), &w);
  EXPECT_EQ(w.labels_low(), 0u);
  EXPECT_TRUE(w.helper().empty());
  EXPECT_FALSE(w.has_seqadj_original());
}

TEST(FlowWireOptional, BadHelperNamesAreRejected) {
  for (const std::string& bad : {std::string("ftp\n"), std::string("f\0p", 3),
                                std::string(16, 'a'), std::string("ftp;rm")}) {
    wire::Flow w;
    to_wire(test::snat_tcp_flow(), &w);
    w.set_helper(bad);
    std::string error;
    EXPECT_FALSE(from_wire(w, error)) << bad;
    EXPECT_NE(error.find("helper"), std::string::npos) << error;
  }
}

TEST(FlowWireOptional, SeqAdjOnUdpIsRejected) {
  wire::Flow w;
  to_wire(test::snat_tcp_flow(), &w);
  w.mutable_original()->set_l4proto(IPPROTO_UDP);
  w.mutable_reply()->set_l4proto(IPPROTO_UDP);
  w.set_tcp_state(0);
  w.mutable_seqadj_original()->set_offset_after(2);
  std::string error;
  EXPECT_FALSE(from_wire(w, error));
  EXPECT_NE(error.find("sequence adjustment"), std::string::npos) << error;
}

}  // namespace
}  // namespace fwha::sync
