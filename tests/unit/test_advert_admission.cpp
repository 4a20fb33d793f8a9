// Unit tests for advert admission: which parsed adverts reach the VRRP state machine (RFC 5798
// 7.1 plus DESIGN.md's "only the configured peer, with the priority it told us").
#include <gtest/gtest.h>

#include <vector>

#include "src/vrrp/advert_admission.h"

namespace fwha::vrrp {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

const IpAddress kPeer = ip("192.0.2.3");
const std::vector<IpAddress> kVips = {ip("192.0.2.1"), ip("198.51.100.1")};

ParsedAdvert from_peer(uint8_t priority = 100) {
  ParsedAdvert p;
  p.source = kPeer;
  p.ttl = 255;
  p.advert.vrid = 51;
  p.advert.priority = priority;
  p.advert.max_adver_interval_cs = 100;
  return p;
}

// A well-formed advert of our group with the peer's priority, from another address.
ParsedAdvert from_address(const char* source) {
  ParsedAdvert p = from_peer();
  p.source = ip(source);
  return p;
}

AdmissionRules rules(std::optional<uint8_t> peer_priority = 100) {
  return {51, kPeer, kVips, peer_priority};
}

TEST(AdvertAdmission, ThePeerWithItsPriorityIsAccepted) {
  const auto v = admit_advert(from_peer(), rules());
  EXPECT_EQ(v.admission, Admission::Accepted);
  EXPECT_TRUE(v.reason.empty());
}

TEST(AdvertAdmission, AnyPriorityIsAcceptedUntilThePeerToldUsItsOwn) {
  EXPECT_EQ(admit_advert(from_peer(250), rules(std::nullopt)).admission, Admission::Accepted);
}

TEST(AdvertAdmission, AForgedPriorityFromThePeersAddressIsRefusedAsAnError) {
  const auto v = admit_advert(from_peer(255), rules(100));
  EXPECT_EQ(v.admission, Admission::RejectedPriority);
  EXPECT_TRUE(v.error);
  EXPECT_NE(v.reason.find("priority=255"), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("the peer's priority is 100"), std::string::npos) << v.reason;
}

TEST(AdvertAdmission, PriorityZeroFromThePeerIsItsGracefulStop) {
  EXPECT_EQ(admit_advert(from_peer(0), rules(100)).admission, Admission::Accepted);
}

TEST(AdvertAdmission, AStrangerIsRefusedNamingTheConfiguredPeer) {
  const auto v = admit_advert(from_address("192.0.2.99"), rules());
  EXPECT_EQ(v.admission, Admission::RejectedSource);
  EXPECT_FALSE(v.error);
  EXPECT_NE(v.reason.find("192.0.2.99"), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("not the configured peer 192.0.2.3"), std::string::npos) << v.reason;
}

TEST(AdvertAdmission, AnAdvertFromAVipPointsAtSourceNat) {
  const auto v = admit_advert(from_address("198.51.100.1"), rules());
  EXPECT_EQ(v.admission, Admission::RejectedSource);
  EXPECT_TRUE(v.error);
  EXPECT_NE(v.reason.find("source-NATed"), std::string::npos) << v.reason;
}

TEST(AdvertAdmission, AnotherGroupOnTheLinkIsNotAnError) {
  ParsedAdvert p = from_address("192.0.2.99");  // even from a stranger: not ours to judge
  p.advert.vrid = 52;
  EXPECT_EQ(admit_advert(p, rules()).admission, Admission::OtherVrid);
}

TEST(AdvertAdmission, TheParsersVerdictComesFirst) {
  ParsedAdvert p = from_peer();
  p.error = ParseError::BadTtl;
  p.ttl = 64;
  auto v = admit_advert(p, rules());
  EXPECT_EQ(v.admission, Admission::RejectedTtl);
  EXPECT_NE(v.reason.find("TTL 64, must be 255"), std::string::npos) << v.reason;

  p.error = ParseError::BadChecksum;
  v = admit_advert(p, rules());
  EXPECT_EQ(v.admission, Admission::RejectedMalformed);
  EXPECT_NE(v.reason.find(to_string(ParseError::BadChecksum)), std::string::npos) << v.reason;

  p.error = ParseError::SourceNotLinkLocal;
  v = admit_advert(p, rules());
  EXPECT_EQ(v.admission, Admission::RejectedSource);
  EXPECT_NE(v.reason.find("link-local"), std::string::npos) << v.reason;
}

TEST(AdvertAdmission, MaxAdverIntZeroIsRefused) {
  // A Backup would derive Master_Down_Interval 0 from it and take over at once.
  ParsedAdvert p = from_peer();
  p.advert.max_adver_interval_cs = 0;
  const auto v = admit_advert(p, rules());
  EXPECT_EQ(v.admission, Admission::RejectedMalformed);
  EXPECT_NE(v.reason.find("Max Adver Int 0"), std::string::npos) << v.reason;
}

}  // namespace
}  // namespace fwha::vrrp
