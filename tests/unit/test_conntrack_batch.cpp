// The pure half of the batched conntrack writer, without a kernel: the request chain of a
// change (checked against a small model of what 6.18 answers, for every kind, NAT or not, and
// table state), the rounds that keep changes to one entry in order, and the mapping of
// answers back to requests by sequence number (wraparound, stale and malformed answers).
#include <gtest/gtest.h>

#include <cstring>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cerrno>
#include <map>
#include <optional>
#include <vector>

#include "fwha/flow.h"
#include "sync/conntrack_convert.h"

namespace fwha::sync {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

FlowChange change(FlowChangeKind kind, bool nat, uint16_t port = 40000) {
  FlowChange c;
  c.kind = kind;
  FlowEntry& e = c.entry;
  e.original = {ip("192.0.2.10"), ip("198.51.100.20"), IPPROTO_TCP, port, 80};
  e.reply = {ip("198.51.100.20"), nat ? ip("203.0.113.1") : ip("192.0.2.10"), IPPROTO_TCP, 80,
             port};
  e.status = flow_status::kSeenReply | flow_status::kAssured | flow_status::kConfirmed |
             (nat ? flow_status::kSrcNat : 0u);
  e.tcp_state = 3;  // ESTABLISHED
  return c;
}

// ---- the request chain ----------------------------------------------------------------------

TEST(ConntrackBatchChain, FirstRequestGuessesFromKindAndNat) {
  EXPECT_EQ(first_request(change(FlowChangeKind::New, true)), CtRequest::CreateExcl);
  EXPECT_EQ(first_request(change(FlowChangeKind::Update, true)), CtRequest::Update);
  EXPECT_EQ(first_request(change(FlowChangeKind::New, false)), CtRequest::Upsert);
  EXPECT_EQ(first_request(change(FlowChangeKind::Update, false)), CtRequest::Upsert);
  EXPECT_EQ(first_request(change(FlowChangeKind::Destroy, true)), CtRequest::Delete);
  EXPECT_EQ(first_request(change(FlowChangeKind::Destroy, false)), CtRequest::Delete);
}

TEST(ConntrackBatchChain, SuccessAndMissingOnDeleteAreFinal) {
  const FlowChange d = change(FlowChangeKind::Destroy, false);
  for (CtRequest r : {CtRequest::CreateExcl, CtRequest::Upsert, CtRequest::Update,
                      CtRequest::UpdateNoStatus, CtRequest::Delete}) {
    CtNext n = next_request(d, r, 0, 1);
    EXPECT_FALSE(n.request) << to_string(r);
    EXPECT_EQ(n.error, 0) << to_string(r);
  }
  CtNext gone = next_request(d, CtRequest::Delete, ENOENT, 1);
  EXPECT_FALSE(gone.request);
  EXPECT_EQ(gone.error, 0);
  CtNext refused = next_request(d, CtRequest::Delete, EPERM, 1);
  EXPECT_FALSE(refused.request);
  EXPECT_EQ(refused.error, EPERM);
}

TEST(ConntrackBatchChain, WrongGuessesLeadToTheOtherRequest) {
  const FlowChange nat = change(FlowChangeKind::New, true);
  const FlowChange plain = change(FlowChangeKind::New, false);
  FlowChange created = nat;
  created.replaces_copy = true;
  struct Row {
    const FlowChange* c;
    CtRequest done;
    int err;
    std::optional<CtRequest> next;
    unsigned sent = 1;
  };
  const Row rows[] = {
      {&nat, CtRequest::CreateExcl, EEXIST, CtRequest::Update},
      // A creation on the Master: the copy found is an earlier flow's and goes first.
      {&created, CtRequest::CreateExcl, EEXIST, CtRequest::DeleteCopy},
      {&created, CtRequest::DeleteCopy, 0, CtRequest::CreateExcl, 2},
      {&created, CtRequest::CreateExcl, EEXIST, CtRequest::DeleteCopy, 3},
      {&created, CtRequest::DeleteCopy, ENOENT, CtRequest::DeleteReplyHolder, 4},
      {&created, CtRequest::DeleteReplyHolder, 0, CtRequest::CreateExcl, 5},
      {&nat, CtRequest::Update, ENOENT, CtRequest::CreateExcl},
      {&nat, CtRequest::Update, EBUSY, CtRequest::UpdateNoStatus},
      {&nat, CtRequest::UpdateNoStatus, ENOENT, CtRequest::CreateExcl},
      {&plain, CtRequest::Upsert, EBUSY, CtRequest::UpdateNoStatus},
      {&plain, CtRequest::Upsert, EEXIST, CtRequest::Upsert},
      {&plain, CtRequest::UpdateNoStatus, ENOENT, CtRequest::Upsert},
      // A create that clashed, then no entry by our original tuple: our reply tuple is held by
      // another (stale) entry. Delete that one, then create.
      {&nat, CtRequest::Update, ENOENT, CtRequest::DeleteReplyHolder, 2},
      {&plain, CtRequest::Upsert, EEXIST, CtRequest::DeleteReplyHolder, 2},
      {&nat, CtRequest::DeleteReplyHolder, 0, CtRequest::CreateExcl, 3},
      {&nat, CtRequest::DeleteReplyHolder, ENOENT, CtRequest::CreateExcl, 3},
      {&plain, CtRequest::DeleteReplyHolder, 0, CtRequest::Upsert, 3},
      // Final answers: nothing to retry.
      {&nat, CtRequest::CreateExcl, EINVAL, std::nullopt},
      {&nat, CtRequest::Update, EOPNOTSUPP, std::nullopt},
      {&nat, CtRequest::UpdateNoStatus, EBUSY, std::nullopt},
      {&plain, CtRequest::Upsert, ENOMEM, std::nullopt},
      {&nat, CtRequest::DeleteReplyHolder, EPERM, std::nullopt, 3},
  };
  for (const Row& row : rows) {
    CtNext n = next_request(*row.c, row.done, row.err, row.sent);
    EXPECT_EQ(n.request, row.next) << to_string(row.done) << " errno " << row.err << " sent "
                                   << row.sent;
    EXPECT_EQ(n.error, row.next ? 0 : row.err) << to_string(row.done) << " errno " << row.err;
  }
}

TEST(ConntrackBatchChain, RetriesAreBounded) {
  const FlowChange c = change(FlowChangeKind::Update, true);
  CtNext n = next_request(c, CtRequest::Update, ENOENT, kMaxRequestsPerChange);
  EXPECT_FALSE(n.request);
  EXPECT_EQ(n.error, ENOENT);
}

// A kernel without the connlabel extension answers an update carrying labels with ENOSPC, one
// without the helper a create naming it with EOPNOTSUPP: the same request goes again without
// them (once), so the rest of the entry still lands.
TEST(ConntrackBatchChain, RefusedLabelsAndHelperAreLeftOutOnce) {
  FlowChange c = change(FlowChangeKind::Update, true);
  c.entry.labels = {8, 0};
  CtNext n = next_request(c, CtRequest::Update, ENOSPC, 1);
  ASSERT_TRUE(n.request);
  EXPECT_EQ(*n.request, CtRequest::Update);
  EXPECT_EQ(n.omit, kOmitLabels);
  n = next_request(c, CtRequest::Update, ENOSPC, 2, n.omit);  // not the labels, then
  EXPECT_FALSE(n.request);
  EXPECT_EQ(n.error, ENOSPC);

  FlowChange f = change(FlowChangeKind::New, true);
  std::strcpy(f.entry.helper.data(), "ftp");
  n = next_request(f, CtRequest::CreateExcl, EOPNOTSUPP, 1);
  ASSERT_TRUE(n.request);
  EXPECT_EQ(*n.request, CtRequest::CreateExcl);
  EXPECT_EQ(n.omit, kOmitHelper);
  // The omission sticks through the rest of the chain.
  n = next_request(f, CtRequest::CreateExcl, EEXIST, 2, n.omit);
  ASSERT_TRUE(n.request);
  EXPECT_EQ(*n.request, CtRequest::Update);
  EXPECT_EQ(n.omit, kOmitHelper);
}

TEST(ConntrackBatchChain, EntriesWithoutLabelsOrHelperKeepTheirErrors) {
  const FlowChange c = change(FlowChangeKind::Update, true);
  EXPECT_FALSE(next_request(c, CtRequest::Update, ENOSPC, 1).request);
  const FlowChange f = change(FlowChangeKind::New, true);
  EXPECT_FALSE(next_request(f, CtRequest::CreateExcl, EOPNOTSUPP, 1).request);
}

// What ctnetlink does with our requests, as measured on 6.18 (see conntrack_convert.h).
// `slot` is the entry found by our original tuple; `holder` another entry holding our reply
// tuple (a stale copy whose NAT binding the Master has since reused).
struct ModelEntry {
  bool nat = false;
  bool assured = false;
  bool earlier_flow = false;  // a copy of an earlier flow on the same tuple (another binding)
};

struct ModelTable {
  std::optional<ModelEntry> slot;
  bool holder = false;
};

int model_kernel(ModelTable& t, const FlowChange& c, CtRequest r) {
  const bool nat = c.entry.is_snat() || c.entry.is_dnat();
  const bool assured = (c.entry.status & flow_status::kAssured) != 0;
  switch (r) {
    case CtRequest::CreateExcl:
    case CtRequest::Upsert:
      if (!t.slot) {
        if (t.holder) return EEXIST;  // the insert clashes on the reply tuple
        t.slot = ModelEntry{nat, assured};
        return 0;
      }
      if (r == CtRequest::CreateExcl) return EEXIST;
      if (nat) return EOPNOTSUPP;
      return t.slot->assured && !assured ? EBUSY : 0;
    case CtRequest::Update:
    case CtRequest::UpdateNoStatus:
      if (!t.slot) return ENOENT;
      // The update object carries status only when it has a settable bit.
      if (r == CtRequest::Update && assured != t.slot->assured && t.slot->assured) return EBUSY;
      return 0;
    case CtRequest::Delete:
    case CtRequest::DeleteCopy:
      if (!t.slot) return ENOENT;
      t.slot.reset();
      return 0;
    case CtRequest::DeleteReplyHolder:
      if (t.holder) {
        t.holder = false;
        return 0;
      }
      if (!t.slot) return ENOENT;
      t.slot.reset();  // our own entry holds our reply tuple too
      return 0;
  }
  return EINVAL;
}

// Every kind, NAT or not, against an absent, a plain, an assured existing entry, a stale one
// holding our reply tuple, an earlier flow's NAT copy under our original tuple, and both of
// the last two: the chain ends applied, within the bound, with NAT set whenever the entry was
// created by us, and the stale holder gone. A creation on the Master (replaces_copy) also ends
// with our own entry in place of the earlier flow's copy.
TEST(ConntrackBatchChain, EveryCaseEndsAppliedAgainstTheKernelModel) {
  for (FlowChangeKind kind :
       {FlowChangeKind::New, FlowChangeKind::Update, FlowChangeKind::Destroy}) {
    for (bool nat : {false, true}) {
      for (bool replaces : {false, true}) {
      if (replaces && kind != FlowChangeKind::New) continue;
      for (int state = 0; state < 6; ++state) {
        // Without NAT and replaces_copy the copy is updated in place and no create ever meets
        // the holder: it stays, as it would in the kernel (the next round removes it).
        if (state == 5 && !(replaces && nat)) continue;
        FlowChange c = change(kind, nat);
        c.replaces_copy = replaces;
        c.entry.status &= ~flow_status::kAssured;  // ours lacks a bit the local one may have
        ModelTable table;
        if (state == 1 || state == 2) table.slot = ModelEntry{false, state == 2};
        if (state == 3 || state == 5) table.holder = true;
        if (state >= 4) table.slot = ModelEntry{true, true, true};
        const bool existed = table.slot.has_value();
        CtRequest r = first_request(c);
        CtNext n;
        unsigned sent = 1;
        for (;; ++sent) {
          n = next_request(c, r, model_kernel(table, c, r), sent);
          if (!n.request) break;
          r = *n.request;
        }
        SCOPED_TRACE(std::string(to_string(kind)) + (nat ? " nat" : " plain") +
                     (replaces ? " replaces_copy" : "") + " state " + std::to_string(state));
        EXPECT_EQ(n.error, 0);
        EXPECT_LE(sent, kMaxRequestsPerChange);
        EXPECT_EQ(table.slot.has_value(), kind != FlowChangeKind::Destroy);
        if (kind != FlowChangeKind::Destroy) {
          EXPECT_FALSE(table.holder);
        }
        if (table.slot && !existed) {
          EXPECT_EQ(table.slot->nat, nat);
        }
        if (replaces && nat) {
          ASSERT_TRUE(table.slot);
          EXPECT_FALSE(table.slot->earlier_flow) << "the earlier flow's copy was replaced";
        }
      }
      }
    }
  }
}

// ---- rounds ---------------------------------------------------------------------------------

std::vector<std::vector<uint32_t>> rounds_of(const std::vector<FlowChange>& changes) {
  EntryRounds r = same_entry_rounds(changes);
  std::vector<std::vector<uint32_t>> out;
  for (size_t i = 0; i < r.count(); ++i) out.emplace_back(r.round(i).begin(), r.round(i).end());
  return out;
}

TEST(ConntrackBatchRounds, DistinctEntriesAreOneRoundInOrder) {
  std::vector<FlowChange> changes;
  for (uint16_t p = 1; p <= 5; ++p) changes.push_back(change(FlowChangeKind::New, true, p));
  EXPECT_EQ(rounds_of(changes), (std::vector<std::vector<uint32_t>>{{0, 1, 2, 3, 4}}));
}

TEST(ConntrackBatchRounds, RepeatedEntryGoesToLaterRounds) {
  const FlowChange a = change(FlowChangeKind::New, true, 1);
  FlowChange a_gone = change(FlowChangeKind::Destroy, true, 1);
  a_gone.entry.reply = {};  // a Destroy may carry no reply tuple: same entry all the same
  FlowChange a_again = change(FlowChangeKind::Update, true, 1);
  a_again.entry.mark = 9;  // same entry, different content
  const FlowChange b = change(FlowChangeKind::New, true, 2);
  const FlowChange c = change(FlowChangeKind::New, true, 3);
  EXPECT_EQ(rounds_of({a, b, a_gone, c, a_again}),
            (std::vector<std::vector<uint32_t>>{{0, 1, 3}, {2}, {4}}));
}

TEST(ConntrackBatchRounds, ZoneAndOriginalTupleMakeTheEntry) {
  FlowChange a = change(FlowChangeKind::New, false, 1);
  FlowChange other_zone = a;
  other_zone.entry.zone = 7;
  FlowChange v4_padding = a;  // bytes past the 4 of an IPv4 address are not part of it
  v4_padding.entry.original.src.bytes[10] = 0xaa;
  EXPECT_EQ(rounds_of({a, other_zone, v4_padding}),
            (std::vector<std::vector<uint32_t>>{{0, 1}, {2}}));
}

TEST(ConntrackBatchRounds, EmptyAndSingle) {
  EXPECT_EQ(same_entry_rounds({}).order.size(), 0u);
  EXPECT_EQ(rounds_of({change(FlowChangeKind::New, true)}),
            (std::vector<std::vector<uint32_t>>{{0}}));
}

// ---- answers --------------------------------------------------------------------------------

// A datagram of netlink answers, as the kernel queues them.
class Answers {
 public:
  Answers& error(uint32_t seq, int err) {
    nlmsghdr* nlh = start(NLMSG_ERROR, seq);
    auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nlmsgerr)));
    e->error = -err;
    e->msg.nlmsg_seq = seq;
    return finish(nlh);
  }
  Answers& other(uint32_t seq) { return finish(start(NLMSG_DONE, seq)); }
  Answers& short_error(uint32_t seq) { return finish(start(NLMSG_ERROR, seq)); }
  const char* data() const { return buf_.data(); }
  size_t size() const { return used_; }

 private:
  nlmsghdr* start(uint16_t type, uint32_t seq) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data() + used_);
    nlh->nlmsg_type = type;
    nlh->nlmsg_seq = seq;
    return nlh;
  }
  Answers& finish(const nlmsghdr* nlh) {
    used_ += MNL_ALIGN(nlh->nlmsg_len);
    return *this;
  }

  std::vector<char> buf_ = std::vector<char>(4096, 0);
  size_t used_ = 0;
};

TEST(ConntrackBatchAnswers, ErrorsLandOnTheirSlotsAndTheLastAckCompletes) {
  std::vector<int> errors(5, 0);
  AckWindow w(100, errors, 4);
  Answers first;
  first.error(101, EEXIST).other(102).error(99, EINVAL).error(200, EPERM);
  w.collect(first.data(), first.size());
  EXPECT_FALSE(w.complete());
  Answers second;
  second.error(103, ENOENT).error(104, 0);
  w.collect(second.data(), second.size());
  EXPECT_TRUE(w.complete());
  EXPECT_EQ(errors, (std::vector<int>{0, EEXIST, 0, ENOENT, 0}));
}

TEST(ConntrackBatchAnswers, LastSlotFailingAlsoCompletes) {
  std::vector<int> errors(2, 0);
  AckWindow w(7, errors, 1);
  Answers a;
  a.error(8, EOPNOTSUPP);
  w.collect(a.data(), a.size());
  EXPECT_TRUE(w.complete());
  EXPECT_EQ(errors, (std::vector<int>{0, EOPNOTSUPP}));
}

TEST(ConntrackBatchAnswers, SequenceNumbersWrap) {
  std::vector<int> errors(4, 0);
  AckWindow w(0xfffffffeu, errors, 3);
  EXPECT_EQ(w.slot_of(0xfffffffeu), 0u);
  EXPECT_EQ(w.slot_of(0xffffffffu), 1u);
  EXPECT_EQ(w.slot_of(0u), 2u);
  EXPECT_EQ(w.slot_of(1u), 3u);
  EXPECT_FALSE(w.slot_of(2u));
  EXPECT_FALSE(w.slot_of(0xfffffffdu));
  Answers a;
  a.error(0, EBUSY).error(1, 0);
  w.collect(a.data(), a.size());
  EXPECT_TRUE(w.complete());
  EXPECT_EQ(errors, (std::vector<int>{0, 0, EBUSY, 0}));
}

TEST(ConntrackBatchAnswers, MalformedErrorCountsAsFailure) {
  std::vector<int> errors(1, 0);
  AckWindow w(5, errors, 0);
  Answers a;
  a.short_error(5);
  w.collect(a.data(), a.size());
  EXPECT_TRUE(w.complete());
  EXPECT_EQ(errors[0], EBADMSG);
}

// ---- request size ---------------------------------------------------------------------------

// The writer reserves kMaxCtRequestBytes per message because nfct_nlmsg_build writes blindly:
// the largest object we build must stay well inside.
TEST(ConntrackBatchRequestSize, LargestObjectFitsWithMargin) {
  FlowEntry e;
  e.original = {ip("fd00:1::1"), ip("fd00:2::2"), IPPROTO_TCP, 1, 2};
  e.reply = {ip("fd00:3::3"), ip("fd00:4::4"), IPPROTO_TCP, 3, 4};
  e.status = flow_status::kSrcNat | flow_status::kDstNat | flow_status::kAssured |
             flow_status::kSeenReply;
  e.zone = 9;
  e.mark = 1;
  e.tcp_state = 3;
  std::vector<char> buf(16384, 0);
  for (const NfConntrackPtr& ct : {to_nf_conntrack_for_create(e), to_nf_conntrack_for_update(e),
                                   to_nf_conntrack_for_delete(e)}) {
    ASSERT_TRUE(ct);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    mnl_nlmsg_put_extra_header(nlh, 4);  // nfgenmsg
    ASSERT_EQ(nfct_nlmsg_build(nlh, ct.get()), 0);
    EXPECT_LT(nlh->nlmsg_len * 2, kMaxCtRequestBytes);
  }
}

}  // namespace
}  // namespace fwha::sync
