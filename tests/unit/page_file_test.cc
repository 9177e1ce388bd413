#include "images/page_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>

namespace crl {
namespace {

class PageFileTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-pages-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // Writes runs of pages (some adjacent, to merge; enough to span frames).
  img::Pagemap WriteSample() {
    auto w = PageWriter::Create(dir_, "pages-1.img", GetParam());
    EXPECT_TRUE(w.ok());
    std::mt19937_64 rng(7);
    uint64_t addr = 0x10000000;
    for (int run = 0; run < 40; run++) {
      size_t pages = 1 + rng() % 300;
      std::vector<char> data(pages * kPageSize);
      for (size_t p = 0; p < pages; p++) {
        uint64_t a = addr + p * kPageSize;
        expected_[a] = data.data() + p * kPageSize - data.data();
        memset(data.data() + p * kPageSize, static_cast<int>(a >> 12), kPageSize);
        memcpy(data.data() + p * kPageSize, &a, 8);
      }
      EXPECT_TRUE(w->Append(addr, data.data(), data.size()).ok());
      addr += pages * kPageSize + (run % 3 == 0 ? 0 : kPageSize * (1 + rng() % 10));
    }
    img::Pagemap pm;
    EXPECT_TRUE(w->Finish(&pm).ok());
    return pm;
  }
  std::string dir_;
  std::map<uint64_t, size_t> expected_;
};

TEST_P(PageFileTest, RoundTrip) {
  img::Pagemap pm = WriteSample();
  EXPECT_LT(pm.entries_size(), 40);  // adjacent runs merged
  auto r = PageReader::Open(dir_, pm);
  ASSERT_TRUE(r.ok()) << r.error().message;
  size_t pages = 0;
  Status s = r->ForEachChunk([&](uint64_t vaddr, const char* data, size_t len) -> Status {
    EXPECT_EQ(len % kPageSize, 0u);
    for (size_t off = 0; off < len; off += kPageSize) {
      uint64_t a = vaddr + off, got;
      memcpy(&got, data + off, 8);
      EXPECT_EQ(got, a);
      EXPECT_EQ(static_cast<unsigned char>(data[off + 100]), static_cast<unsigned char>(a >> 12));
      EXPECT_TRUE(expected_.count(a));
      pages++;
    }
    return Ok{};
  });
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(pages, expected_.size());
  EXPECT_EQ(pm.total_pages(), expected_.size());
}

TEST_P(PageFileTest, TruncatedFileIsRefusedUpFront) {
  img::Pagemap pm = WriteSample();
  ASSERT_EQ(truncate((dir_ + "/pages-1.img").c_str(), pm.pages_file_size() - 4096), 0);
  auto r = PageReader::Open(dir_, pm);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
}

TEST_P(PageFileTest, MissingFileIsNamed) {
  img::Pagemap pm = WriteSample();
  unlink((dir_ + "/pages-1.img").c_str());
  auto r = PageReader::Open(dir_, pm);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("pages-1.img is missing"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(RawAndZstd, PageFileTest, ::testing::Values(0, 1),
                         [](const auto& info) { return info.param ? "zstd" : "raw"; });

TEST(ZstdPageFile, CorruptFrameIsReported) {
  char tmpl[] = "/tmp/crl-pages-test-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto w = PageWriter::Create(dir, "pages-1.img", 1);
  ASSERT_TRUE(w.ok());
  std::vector<char> data(64 * kPageSize);
  std::mt19937 rng(1);
  for (auto& c : data) c = static_cast<char>(rng());
  ASSERT_TRUE(w->Append(0x400000, data.data(), data.size()).ok());
  img::Pagemap pm;
  ASSERT_TRUE(w->Finish(&pm).ok());
  {
    std::fstream f(dir + "/pages-1.img", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(pm.pages_file_size() / 2);
    f.put('\x55').put('\xaa').put('\x55');
  }
  auto r = PageReader::Open(dir, pm);
  ASSERT_TRUE(r.ok());
  Status s = r->ForEachChunk([](uint64_t, const char*, size_t) -> Status { return Ok{}; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("corrupt"), std::string::npos) << s.error().message;
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace crl
