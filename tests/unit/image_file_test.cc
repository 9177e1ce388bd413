#include "images/image_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "images/criu_lite.pb.h"

namespace crl {
namespace {

class ImageFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-image-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/core-1.img";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Slurp() {
    std::ifstream f(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void Spit(const std::string& s) { std::ofstream(path_, std::ios::binary) << s; }
  img::TaskCore Sample() {
    img::TaskCore c;
    c.set_pid(1);
    c.set_comm("sample");
    c.add_threads()->set_tid(1);
    return c;
  }
  std::string dir_, path_;
};

TEST_F(ImageFileTest, RoundTrip) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kCore, Sample()).ok());
  img::TaskCore back;
  Status s = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(back.comm(), "sample");
  EXPECT_EQ(back.threads(0).tid(), 1);
}

TEST_F(ImageFileTest, MissingFileIsNamed) {
  img::TaskCore back;
  Status s = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("core-1.img is missing"), std::string::npos)
      << s.error().message;
}

TEST_F(ImageFileTest, TruncatedPayload) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kCore, Sample()).ok());
  std::string s = Slurp();
  Spit(s.substr(0, s.size() - 3));
  img::TaskCore back;
  Status st = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("truncated"), std::string::npos) << st.error().message;
}

TEST_F(ImageFileTest, TruncatedHeader) {
  Spit("CLC");
  img::TaskCore back;
  Status st = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("truncated"), std::string::npos) << st.error().message;
}

TEST_F(ImageFileTest, ForeignFile) {
  Spit(
      std::string("\x7f"
                  "ELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                  16));
  img::TaskCore back;
  Status st = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("not a criu-lite image"), std::string::npos)
      << st.error().message;
}

TEST_F(ImageFileTest, WrongKind) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kMm, img::MmState()).ok());
  img::TaskCore back;
  Status st = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("holds a mm record, expected core"), std::string::npos)
      << st.error().message;
}

TEST_F(ImageFileTest, NewerVersionIsRefused) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kCore, Sample()).ok());
  std::string s = Slurp();
  s[4] = static_cast<char>(kImageFormatVersion + 1);
  Spit(s);
  img::TaskCore back;
  Status st = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("newer than this criu-lite"), std::string::npos)
      << st.error().message;
}

TEST_F(ImageFileTest, CorruptProtobuf) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kCore, Sample()).ok());
  std::string s = Slurp();
  for (size_t i = sizeof(ImageHeader); i < s.size(); i++) s[i] = '\xff';
  Spit(s);
  img::TaskCore back;
  Status st = ReadImage(path_, ImageKind::kCore, &back);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("corrupt"), std::string::npos) << st.error().message;
}

TEST_F(ImageFileTest, TrailingGarbage) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kCore, Sample()).ok());
  Spit(Slurp() + "junk");
  img::TaskCore back;
  EXPECT_FALSE(ReadImage(path_, ImageKind::kCore, &back).ok());
}

TEST_F(ImageFileTest, JsonNamesKind) {
  ASSERT_TRUE(WriteImage(path_, ImageKind::kCore, Sample()).ok());
  auto json = ImageToJson(path_);
  ASSERT_TRUE(json.ok()) << json.error().message;
  EXPECT_NE(json->find("\"kind\": \"core\""), std::string::npos);
  // Names are bytes (they need not be UTF-8): JSON shows them in base64.
  EXPECT_NE(json->find("\"comm\": \"c2FtcGxl\""), std::string::npos) << *json;
}

}  // namespace
}  // namespace crl
