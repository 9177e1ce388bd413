// CRIU's --external veth[IF]:NAME[@BRIDGE], as restore reads it.
#include "kernel/net_ns.h"

#include <gtest/gtest.h>

namespace crl {
namespace {

TEST(ParseVethExternal, NameAndBridge) {
  std::map<std::string, VethOutside> out;
  ASSERT_TRUE(*ParseVethExternal("veth[eth0]:veth-ct1@br0", &out));
  ASSERT_TRUE(*ParseVethExternal("veth[eth1]:ct1b", &out));
  EXPECT_EQ(out["eth0"].name, "veth-ct1");
  EXPECT_EQ(out["eth0"].bridge, "br0");
  EXPECT_EQ(out["eth1"].name, "ct1b");
  EXPECT_EQ(out["eth1"].bridge, "");
}

TEST(ParseVethExternal, OtherKindsAreNotItsToRead) {
  std::map<std::string, VethOutside> out;
  EXPECT_FALSE(*ParseVethExternal("mnt[vol]:/srv", &out));
  EXPECT_TRUE(out.empty());
}

TEST(ParseVethExternal, MalformedOrTooLongIsAClearError) {
  std::map<std::string, VethOutside> out;
  for (const char* bad : {"veth[eth0]", "veth[eth0]:", "veth[]:x", "veth[eth0]:a@",
                          "veth[eth0]:a/b", "veth[eth0]:a b"}) {
    auto r = ParseVethExternal(bad, &out);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("veth[IF]:NAME[@BRIDGE]"), std::string::npos)
        << r.error().message;
  }
  auto r = ParseVethExternal("veth[eth0]:a-name-of-sixteen-c", &out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("longer than a link name can be (15)"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace crl
