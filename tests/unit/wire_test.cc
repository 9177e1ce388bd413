#include "pageserver/wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace crl {
namespace {

struct Pair {
  int a, b;
  std::unique_ptr<Channel> ca, cb;
  Pair() {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    a = sv[0];
    b = sv[1];
    ca = PlainChannel(a);
    cb = PlainChannel(b);
  }
  ~Pair() {
    close(a);
    close(b);
  }
};

TEST(Wire, HeaderRoundTrip) {
  Pair p;
  wire::Header h;
  h.set_type(wire::Header::APPEND);
  h.set_name("pages-1.img");
  h.set_payload_len(4096);
  ASSERT_TRUE(SendHeader(*p.ca, h).ok());
  auto r = RecvHeader(*p.cb);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->type(), wire::Header::APPEND);
  EXPECT_EQ(r->name(), "pages-1.img");
  EXPECT_EQ(r->payload_len(), 4096u);
}

TEST(Wire, HangUpMidStreamIsNamed) {
  Pair p;
  const unsigned char partial[] = {20, 0, 0, 0, 0x08};  // promises 20 bytes, sends 1
  ASSERT_EQ(write(p.a, partial, sizeof partial), 5);
  shutdown(p.a, SHUT_WR);
  auto r = RecvHeader(*p.cb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("hung up mid-stream"), std::string::npos) << r.error().message;
}

TEST(Wire, OversizedOrGarbageHeadersAreNotThisProtocol) {
  {
    Pair p;
    const char http[] = "GET / HTTP/1.0\r\n";
    ASSERT_GT(write(p.a, http, sizeof http), 0);
    auto r = RecvHeader(*p.cb);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("does not speak"), std::string::npos) << r.error().message;
  }
  {
    Pair p;
    const unsigned char junk[] = {3, 0, 0, 0, 0xff, 0xff, 0xff};
    ASSERT_EQ(write(p.a, junk, sizeof junk), 7);
    auto r = RecvHeader(*p.cb);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("garbage"), std::string::npos) << r.error().message;
  }
}

TEST(Wire, StallIsNamed) {
  Pair p;
  ASSERT_TRUE(SetSocketTimeouts(p.b, 1).ok());
  auto r = RecvHeader(*p.cb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("stalled"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace crl
