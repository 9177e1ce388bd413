// The chain of an iterative dump's images, resolved from image files
// written here: each page from the newest pass that has it, and a chain
// that loops, breaks or misses a page refused.
#include "images/page_chain.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "images/image_dir.h"
#include "images/image_file.h"

namespace crl {
namespace {

constexpr pid_t kPid = 42;
constexpr uint64_t kBase = 0x10000000;
constexpr int kPages = 16;

class PageChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-chain-test-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // One pass NAME: pages in FRESH carry TAG, the rest of the mapping is in
  // the parent (PARENT: a link to ../PARENT, or none), or with HOLES in no
  // image at all.
  void WritePass(const std::string& name, const std::vector<int>& fresh, char tag,
                 const std::string& parent, bool holes = false) {
    std::string dir = root_ + "/" + name;
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    auto w = PageWriter::Create(dir, ImageDir::PagesName(kPid), 0);
    ASSERT_TRUE(w.ok()) << w.error().message;
    std::vector<char> page(kPageSize);
    for (int p = 0; p < kPages; p++) {
      if (std::find(fresh.begin(), fresh.end(), p) == fresh.end()) {
        if (!holes) w->AppendInParent(kBase + p * kPageSize, kPageSize);
        continue;
      }
      memset(page.data(), tag, page.size());
      page[0] = static_cast<char>(p);
      ASSERT_TRUE(w->Append(kBase + p * kPageSize, page.data(), page.size()).ok());
    }
    img::Pagemap pm;
    ASSERT_TRUE(w->Finish(&pm).ok());
    ImageDir images(dir);
    ASSERT_TRUE(WriteImage(images.Pagemap(kPid), ImageKind::kPagemap, pm).ok());
    img::MmState mm;
    img::Vma* v = mm.add_vmas();
    v->set_start(kBase);
    v->set_end(kBase + kPages * kPageSize);
    v->set_prot(3);
    ASSERT_TRUE(WriteImage(images.Mm(kPid), ImageKind::kMm, mm).ok());
    if (!parent.empty()) {
      ASSERT_EQ(symlink(("../" + parent).c_str(), images.ParentLink().c_str()), 0);
    }
    pagemaps_[name] = pm;
  }

  Result<PageChain> Resolve(const std::string& name) {
    return ResolvePageChain(root_ + "/" + name, kPid, pagemaps_[name]);
  }

  // Page number -> the tag of the bytes the chain sends it to.
  std::map<int, char> Contents(const PageChain& chain) {
    std::map<int, char> got;
    for (const ChainedRun& r : chain.runs)
      for (uint64_t off = 0; off < r.len; off += kPageSize) {
        char head[2];
        EXPECT_EQ(pread(chain.sources[r.source]->fd(), head, 2, r.offset + off), 2);
        int page = static_cast<int>((r.vaddr + off - kBase) / kPageSize);
        EXPECT_EQ(head[0], static_cast<char>(page)) << "page " << page << " read from elsewhere";
        EXPECT_EQ(got.count(page), 0u) << "page " << page << " twice";
        got[page] = head[1];
      }
    return got;
  }

  std::string root_;
  std::map<std::string, img::Pagemap> pagemaps_;
};

TEST_F(PageChainTest, EachPageComesFromTheNewestPassThatHasIt) {
  std::vector<int> all;
  for (int p = 0; p < kPages; p++) all.push_back(p);
  WritePass("p1", all, 'a', "");
  WritePass("p2", {4, 5, 6, 7}, 'b', "p1");
  WritePass("final", {5, 10, 11}, 'c', "p2");
  auto chain = Resolve("final");
  ASSERT_TRUE(chain.ok()) << chain.error().message;
  EXPECT_EQ(chain->sources.size(), 3u);
  std::map<int, char> want;
  for (int p = 0; p < kPages; p++) want[p] = 'a';
  for (int p : {4, 6, 7}) want[p] = 'b';
  for (int p : {5, 10, 11}) want[p] = 'c';
  EXPECT_EQ(Contents(*chain), want);
}

TEST_F(PageChainTest, APassWithEveryPageEndsTheChainThere) {
  std::vector<int> all;
  for (int p = 0; p < kPages; p++) all.push_back(p);
  WritePass("p1", {}, 'a', "");  // never read: p2 has every page
  WritePass("p2", all, 'b', "p1");
  WritePass("final", {0}, 'c', "p2");
  auto chain = Resolve("final");
  ASSERT_TRUE(chain.ok()) << chain.error().message;
  EXPECT_EQ(chain->sources.size(), 2u);
  EXPECT_EQ(Contents(*chain)[0], 'c');
  EXPECT_EQ(Contents(*chain)[15], 'b');
}

TEST_F(PageChainTest, APageInNoPassIsABrokenChain) {
  WritePass("p1", {0, 1, 2}, 'a', "", /*holes=*/true);
  WritePass("final", {3}, 'c', "p1");
  auto chain = Resolve("final");
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().message.find("a broken chain"), std::string::npos)
      << chain.error().message;
}

TEST_F(PageChainTest, PagesInAParentThatIsNotThereAreRefused) {
  WritePass("final", {3}, 'c', "");
  auto chain = Resolve("final");
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().message.find("has no parent link"), std::string::npos)
      << chain.error().message;
}

TEST_F(PageChainTest, AChainThatComesBackOnItselfIsRefused) {
  WritePass("p1", {0}, 'a', "final");
  WritePass("final", {1}, 'c', "p1");
  auto chain = Resolve("final");
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().message.find("loops"), std::string::npos) << chain.error().message;
}

}  // namespace
}  // namespace crl
