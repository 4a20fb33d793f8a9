// The virtual MAC: its address and link name, and VirtualMacLink's life cycle against a fake
// link port and a sysctl tree in a temporary directory: it leaves the link down, raises the
// parent's ARP sysctls only when needed, sets the link's own, and undoes exactly what it did
// on the parent, also when it adopts the link (and the changes) of a killed fwhad.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "vip/virtual_mac.h"

namespace fs = std::filesystem;
using fwha::Family;
using fwha::vip::LinkPort;
using fwha::vip::MacAddress;
using fwha::vip::VirtualMacLink;

namespace {

class FakeLinks : public LinkPort {
 public:
  std::error_code ensure_macvlan(const std::string& name, int parent, const MacAddress& mac,
                                 Link& link, std::string& why) override {
    calls.push_back("ensure " + name + " on " + std::to_string(parent) + " " +
                    fwha::vip::to_string(mac));
    if (refuse_ensure) {
      why = "a link of that name exists";
      return std::make_error_code(std::errc::file_exists);
    }
    link = {42, !alias.empty(), alias};
    return {};
  }
  std::error_code set_alias(int, const std::string& a) override {
    alias = a;
    return {};
  }
  std::error_code set_up(int ifindex, bool up) override {
    calls.push_back(std::string(up ? "up " : "down ") + std::to_string(ifindex));
    return {};
  }
  std::error_code remove(int ifindex) override {
    calls.push_back("remove " + std::to_string(ifindex));
    return {};
  }
  std::vector<std::string> calls;
  bool refuse_ensure = false;
  std::string alias;  // kept as the kernel keeps a link's alias: survives the "fwhad"
};

class VirtualMacLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() /
           ("fwha-vmac-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (const char* dir : {"lan0", "eth0.100", "vmac51-0"}) {
      fs::create_directories(root / "net/ipv4/conf" / dir);
      write(std::string("net/ipv4/conf/") + dir + "/arp_ignore", "0");
      write(std::string("net/ipv4/conf/") + dir + "/arp_announce", "0");
      write(std::string("net/ipv4/conf/") + dir + "/rp_filter", "1");
    }
  }
  void TearDown() override { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& v) { std::ofstream(root / rel) << v << "\n"; }
  std::string read(const std::string& rel) {
    std::string v;
    std::ifstream(root / rel) >> v;
    return v;
  }
  std::unique_ptr<VirtualMacLink> open(const std::string& parent, std::string& what,
                                       std::error_code& ec) {
    return VirtualMacLink::open(links, "vmac51-0", parent, 7,
                                fwha::vip::virtual_mac(51, Family::V4), what, ec, root);
  }
  fs::path root;
  FakeLinks links;
};

}  // namespace

TEST(VirtualMac, AddressIsRfc5798PerFamily) {
  EXPECT_EQ(fwha::vip::to_string(fwha::vip::virtual_mac(51, Family::V4)), "00:00:5e:00:01:33");
  EXPECT_EQ(fwha::vip::to_string(fwha::vip::virtual_mac(255, Family::V6)), "00:00:5e:00:02:ff");
}

TEST(VirtualMac, LinkNamesFitIfnamsizAndHaveNoDot) {
  EXPECT_EQ(fwha::vip::virtual_mac_link_name(51, 0), "vmac51-0");
  const std::string longest = fwha::vip::virtual_mac_link_name(255, 99);
  EXPECT_LT(longest.size(), 16u);  // IFNAMSIZ with its NUL
  EXPECT_EQ(longest.find('.'), std::string::npos);
}

TEST_F(VirtualMacLinkTest, OpenLeavesTheLinkDownAndSetsTheSysctlsUntilItGoes) {
  std::string what;
  std::error_code ec;
  {
    auto link = open("lan0", what, ec);
    ASSERT_TRUE(link) << what << ": " << ec.message();
    EXPECT_EQ(link->ifindex(), 42);
    EXPECT_EQ(read("net/ipv4/conf/lan0/arp_ignore"), "1");
    EXPECT_EQ(read("net/ipv4/conf/lan0/arp_announce"), "2");
    EXPECT_EQ(read("net/ipv4/conf/vmac51-0/arp_ignore"), "1");  // the node's own addresses
    EXPECT_EQ(read("net/ipv4/conf/vmac51-0/rp_filter"), "2");
    EXPECT_EQ(links.calls, (std::vector<std::string>{"ensure vmac51-0 on 7 00:00:5e:00:01:33",
                                                     "down 42"}));
    EXPECT_EQ(links.alias, "fwha: arp_ignore=0 arp_announce=0");
    EXPECT_FALSE(link->set_up(true));
    EXPECT_EQ(links.calls.back(), "up 42");
  }
  EXPECT_EQ(links.calls.back(), "remove 42");
  EXPECT_EQ(read("net/ipv4/conf/lan0/arp_ignore"), "0");  // put back
  EXPECT_EQ(read("net/ipv4/conf/lan0/arp_announce"), "0");
}

TEST_F(VirtualMacLinkTest, ValuesTheOperatorSetAreLeftAlone) {
  write("net/ipv4/conf/lan0/arp_ignore", "2");
  write("net/ipv4/conf/lan0/arp_announce", "2");
  std::string what;
  std::error_code ec;
  { ASSERT_TRUE(open("lan0", what, ec)); }
  EXPECT_EQ(read("net/ipv4/conf/lan0/arp_ignore"), "2");
  EXPECT_EQ(read("net/ipv4/conf/lan0/arp_announce"), "2");
}

// After a SIGKILL the parent keeps our values and the link its alias: the next fwhad adopts
// the link and still puts back what was there before the first one.
TEST_F(VirtualMacLinkTest, AnAdoptedLinkRestoresWhatTheKilledFwhadChanged) {
  std::string what;
  std::error_code ec;
  auto first = open("lan0", what, ec);
  ASSERT_TRUE(first);
  links.calls.clear();
  // (a SIGKILL: no destructor; the kernel keeps the link, its alias and the sysctls)
  auto second = open("lan0", what, ec);
  ASSERT_TRUE(second) << what;
  EXPECT_EQ(links.alias, "fwha: arp_ignore=0 arp_announce=0");
  second.reset();
  EXPECT_EQ(read("net/ipv4/conf/lan0/arp_ignore"), "0");
  EXPECT_EQ(read("net/ipv4/conf/lan0/arp_announce"), "0");
  (void)first.release();  // never destroyed, as after a SIGKILL  // NOLINT
}

TEST_F(VirtualMacLinkTest, DottedParentNamesAreDirectoriesAsTheyAre) {
  std::string what;
  std::error_code ec;
  auto link = open("eth0.100", what, ec);
  ASSERT_TRUE(link) << what;
  EXPECT_EQ(read("net/ipv4/conf/eth0.100/arp_ignore"), "1");
}

TEST_F(VirtualMacLinkTest, SomeoneElsesLinkIsAnErrorNamingIt) {
  links.refuse_ensure = true;
  std::string what;
  std::error_code ec;
  EXPECT_FALSE(open("lan0", what, ec));
  EXPECT_EQ(ec, std::errc::file_exists);
  EXPECT_NE(what.find("vmac51-0 over lan0"), std::string::npos) << what;
  EXPECT_NE(what.find("exists"), std::string::npos) << what;
}

TEST_F(VirtualMacLinkTest, AFailureAfterCreationLeavesNoLinkBehind) {
  std::string what;
  std::error_code ec;  // no sysctl directory for this parent
  EXPECT_FALSE(open("wan9", what, ec));
  EXPECT_NE(what.find("wan9/arp_ignore"), std::string::npos) << what;
  EXPECT_TRUE(ec);
  EXPECT_EQ(links.calls.back(), "remove 42");
}
