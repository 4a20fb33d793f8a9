// Flow identity and fingerprints used by reconciliation.
#include <gtest/gtest.h>

#include "flow_samples.h"
#include "sync/flow_digest.h"

namespace fwha::sync {
namespace {

TEST(FlowDigest, ContentHashIgnoresWhatLegitimatelyDiffers) {
  FlowEntry a = test::snat_tcp_flow();
  FlowEntry b = a;
  b.timeout_s = 12;
  b.status &= ~(flow_status::kConfirmed | flow_status::kSrcNatDone | flow_status::kDstNatDone);
  EXPECT_EQ(content_hash(a), content_hash(b));
}

TEST(FlowDigest, ContentHashSeesEveryReplicatedField) {
  const FlowEntry base = test::snat_tcp_flow();
  std::vector<FlowEntry> variants(6, base);
  variants[0].reply.dst_port += 1;  // another NAT port
  variants[1].mark += 1;
  variants[2].tcp_state = 4;
  variants[3].status &= ~flow_status::kAssured;
  variants[4].zone = 9;
  variants[5].reply.dst = *IpAddress::parse("198.51.100.4");
  for (const auto& v : variants) EXPECT_NE(content_hash(v), content_hash(base));
}

TEST(FlowDigest, KeyIsTheOriginalTupleAndZone) {
  FlowEntry a = test::snat_tcp_flow();
  FlowEntry b = a;
  b.reply.dst_port += 7;
  b.mark = 99;
  EXPECT_EQ(key_of(a), key_of(b));
  EXPECT_EQ(bucket_of(key_of(a)), bucket_of(key_of(b)));
  b.zone = 1;
  EXPECT_NE(key_hash(key_of(a)), key_hash(key_of(b)));
}

TEST(FlowDigest, BucketsSpreadAndDigestsCompare) {
  TableDigest one, other;
  std::vector<uint32_t> per_bucket(kBuckets, 0);
  for (uint16_t p = 1; p < 65535; ++p) {  // about one per bucket
    FlowEntry e = test::snat_tcp_flow(p, p);
    one.add(e);
    other.add(e);
    ++per_bucket[bucket_of(key_of(e))];
  }
  // Spread as at random: ~1 - 1/e of the buckets hold one or more, none holds a dozen.
  const auto used = std::count_if(per_bucket.begin(), per_bucket.end(),
                                  [](uint32_t n) { return n > 0; });
  EXPECT_GT(used, kBuckets * 55 / 100);
  EXPECT_LT(used, kBuckets * 70 / 100);
  EXPECT_LT(*std::max_element(per_bucket.begin(), per_bucket.end()), 12u);
  EXPECT_TRUE(one.differing(other.digest).empty());
  FlowEntry extra = test::snat_tcp_flow(60000, 1);
  other.add(extra);
  EXPECT_EQ(one.differing(other.digest),
            std::vector<uint32_t>{bucket_of(key_of(extra))});
  EXPECT_EQ(other.entries, 65535u);
}

}  // namespace
}  // namespace fwha::sync
