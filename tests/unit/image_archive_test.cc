// Image archives: what a dump streams in comes out byte for byte, streamed
// files in pieces or whole, and what is not such an archive is refused by
// name.
#include "images/image_archive.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

namespace crl {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class ImageArchiveTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    auto t = TempImageDir::Create();
    ASSERT_TRUE(t.ok());
    tmp_.emplace(std::move(*t));
    path_ = tmp_->path() + "/dump" + GetParam();
    out_ = tmp_->path() + "/out";
    ASSERT_EQ(mkdir(out_.c_str(), 0700), 0);
  }
  std::optional<TempImageDir> tmp_;
  std::string path_, out_;
};

TEST_P(ImageArchiveTest, StreamsComeBackByteForByteInPiecesOrWhole) {
  // Exactly one piece's worth stays whole; one byte more makes two pieces;
  // many small appends make several.
  std::string whole = Bytes(kArchivePart, 1), two = Bytes(kArchivePart + 4096, 2);
  std::string many = Bytes(2 * kArchivePart + 12345, 3), empty;
  {
    auto a = ArchiveImageOutput::Create(path_);
    ASSERT_TRUE(a.ok()) << a.error().message;
    ASSERT_TRUE((*a)->AppendFile("pages-1.img", "", 0).ok());
    ASSERT_TRUE((*a)->AppendFile("pages-1.img", whole.data(), whole.size()).ok());
    ASSERT_TRUE((*a)->PutFile("pagemap-1.img", "pm1").ok());
    ASSERT_TRUE((*a)->AppendFile("pages-2.img", two.data(), two.size()).ok());
    for (size_t off = 0; off < many.size(); off += 1 << 20)
      ASSERT_TRUE((*a)->AppendFile("pages-3.img", many.data() + off,
                                   std::min<size_t>(1 << 20, many.size() - off))
                      .ok());
    ASSERT_TRUE((*a)->AppendFile("pages-4.img", "", 0).ok());
    // A stream that ended is not reopened: its pieces are written.
    EXPECT_FALSE((*a)->AppendFile("pages-1.img", "x", 1).ok());
    ASSERT_TRUE((*a)->PutFile("inventory.img", "inv").ok());
    // Nothing is at the archive's name before it is complete.
    EXPECT_NE(access(path_.c_str(), F_OK), 0);
    ASSERT_TRUE((*a)->Commit().ok());
  }
  Status st = UnpackImageArchive(path_, out_);
  ASSERT_TRUE(st.ok()) << st.error().message;
  const std::string& o = out_;
  EXPECT_TRUE(Slurp(o + "/pages-1.img") == whole);
  EXPECT_TRUE(Slurp(o + "/pages-2.img") == two);
  EXPECT_TRUE(Slurp(o + "/pages-3.img") == many);
  EXPECT_EQ(Slurp(o + "/pages-4.img"), empty);
  EXPECT_EQ(access((o + "/pages-4.img").c_str(), F_OK), 0);
  EXPECT_EQ(Slurp(o + "/pagemap-1.img"), "pm1");
  EXPECT_EQ(Slurp(o + "/inventory.img"), "inv");
}

TEST_P(ImageArchiveTest, AnArchiveNeverCommittedLeavesNothing) {
  {
    auto a = ArchiveImageOutput::Create(path_);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE((*a)->PutFile("core-1.img", "c").ok());
  }
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
  int left = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp_->path()))
    left += e.path().filename() != "out";
  EXPECT_EQ(left, 0) << "a partial archive was left behind";
}

TEST_P(ImageArchiveTest, CutShortIsRefused) {
  std::string pages = Bytes(3 * kArchivePart, 4);
  {
    auto a = ArchiveImageOutput::Create(path_);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE((*a)->AppendFile("pages-1.img", pages.data(), pages.size()).ok());
    ASSERT_TRUE((*a)->PutFile("inventory.img", "inv").ok());
    ASSERT_TRUE((*a)->Commit().ok());
  }
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  ASSERT_EQ(truncate(path_.c_str(), st.st_size / 2), 0);
  Status r = UnpackImageArchive(path_, out_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(path_), std::string::npos) << r.error().message;
  EXPECT_TRUE(r.error().message.find("truncated or damaged") != std::string::npos ||
              r.error().message.find("no inventory.img") != std::string::npos)
      << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(Kinds, ImageArchiveTest, ::testing::Values(".tar", ".tar.zst", ".tar.gz"),
                         [](const auto& info) {
                           std::string s = info.param + 1;
                           for (char& c : s)
                             if (c == '.') c = '_';
                           return s;
                         });

TEST(ImageArchive, ANameThatIsNoArchiveIsRefused) {
  auto a = ArchiveImageOutput::Create("/tmp/dump.zip");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message.find(".tar, .tar.zst, .tar.gz"), std::string::npos)
      << a.error().message;
}

TEST(ImageArchive, ForeignFilesAreRefusedByName) {
  auto made = TempImageDir::Create();
  ASSERT_TRUE(made.ok());
  TempImageDir tmp = std::move(*made);
  std::string out = tmp.path() + "/out";
  ASSERT_EQ(mkdir(out.c_str(), 0700), 0);
  // Not an archive at all.
  std::string junk = tmp.path() + "/junk.tar";
  std::ofstream(junk) << std::string(4096, 'x');
  Status r = UnpackImageArchive(junk, out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a tar archive"), std::string::npos) << r.error().message;
  // A tar of something else: a directory and a path.
  std::string foreign = tmp.path() + "/foreign.tar";
  ASSERT_EQ(system(("mkdir -p " + tmp.path() + "/f/checkpoint && echo x > " + tmp.path() +
                    "/f/checkpoint/inventory.img && tar -C " + tmp.path() + "/f -cf " + foreign +
                    " checkpoint")
                       .c_str()),
            0);
  r = UnpackImageArchive(foreign, out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a criu-lite image archive: it holds 'checkpoint/'"),
            std::string::npos)
      << r.error().message;
  // No such file.
  r = UnpackImageArchive(tmp.path() + "/none.tar", out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("none.tar"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace crl
