#include "images/page_chain.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/validate.h"

namespace crl {
namespace {

struct ChainLevel {
  std::string dir;
  img::Pagemap pm;  // entries sorted by vaddr
};

constexpr size_t kMaxChain = 1000;

Status ResolveRange(std::vector<ChainLevel>& levels, size_t k, pid_t pid, uint64_t a, uint64_t b,
                    PageChain* chain) {
  if (k >= levels.size()) {
    // Load the next link of the chain.
    std::string link = ImageDir(levels.back().dir).ParentLink();
    char target[4096];
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n < 0)
      return MakeError("pages 0x%lx-0x%lx of PID %d are 'in parent', but %s has no parent link", a,
                       b, pid, levels.back().dir.c_str());
    std::string t(target, n);
    std::string dir = t[0] == '/' ? t : levels.back().dir + "/" + t;
    // A chain is as long as the passes made, and never comes back on itself.
    if (levels.size() > kMaxChain)
      return MakeError("the chain of images under %s is over %zu links long", levels[0].dir.c_str(),
                       kMaxChain);
    char real[PATH_MAX];
    if (!realpath(dir.c_str(), real))
      return ErrnoError("following the chain of images: %s", dir.c_str());
    for (const ChainLevel& l : levels) {
      char seen[PATH_MAX];
      if (realpath(l.dir.c_str(), seen) && strcmp(seen, real) == 0)
        return MakeError("the chain of images loops: %s comes back to %s", link.c_str(), real);
    }
    ChainLevel next{dir, {}};
    ImageDir images(dir);
    TRY(ReadImage(images.Pagemap(pid), ImageKind::kPagemap, &next.pm)
            .Context("following the chain of images"));
    img::MmState parent_mm;
    TRY(ReadImage(images.Mm(pid), ImageKind::kMm, &parent_mm)
            .Context("following the chain of images"));
    TRY(ValidateMm(parent_mm).Context(dir));
    TRY(ValidatePagemap(next.pm, parent_mm).Context(images.Pagemap(pid)));
    if (next.pm.encoding() != img::Pagemap::RAW)
      return MakeError("%s: compressed pages in a chain of images are not supported yet",
                       dir.c_str());
    std::sort(next.pm.mutable_entries()->begin(), next.pm.mutable_entries()->end(),
              [](const img::PagemapEntry& x, const img::PagemapEntry& y) {
                return x.vaddr() < y.vaddr();
              });
    auto reader = TRY(PageReader::Open(dir, next.pm));
    chain->sources.push_back(std::make_unique<PageReader>(std::move(reader)));
    levels.push_back(std::move(next));
  }
  const img::Pagemap& pm = levels[k].pm;
  uint64_t covered = a;
  auto it = std::upper_bound(pm.entries().begin(), pm.entries().end(), a,
                             [](uint64_t v, const img::PagemapEntry& e) { return v < e.vaddr(); });
  if (it != pm.entries().begin()) --it;
  for (; it != pm.entries().end() && it->vaddr() < b; ++it) {
    uint64_t s = std::max(a, it->vaddr()),
             e = std::min(b, it->vaddr() + it->nr_pages() * kPageSize);
    if (s >= e) continue;
    if (s != covered) break;
    if (it->in_parent())
      TRY(ResolveRange(levels, k + 1, pid, s, e, chain));
    else
      chain->runs.push_back({s, e - s, k, it->data_offset() + (s - it->vaddr())});
    covered = e;
  }
  if (covered != b)
    return MakeError(
        "page 0x%lx of PID %d is in none of the images of the chain (%s): a broken "
        "chain",
        covered, pid, levels[k].dir.c_str());
  return Ok{};
}

}  // namespace

Result<PageChain> ResolvePageChain(const std::string& dir, pid_t pid, const img::Pagemap& pm) {
  PageChain chain;
  if (pm.encoding() != img::Pagemap::RAW)
    return MakeError("%s: compressed pages in a chain of images are not supported yet",
                     dir.c_str());
  std::vector<ChainLevel> levels{{dir, pm}};
  auto first = TRY(PageReader::Open(dir, pm));
  chain.sources.push_back(std::make_unique<PageReader>(std::move(first)));
  for (const img::PagemapEntry& e : pm.entries()) {
    if (e.in_parent())
      TRY(ResolveRange(levels, 1, pid, e.vaddr(), e.vaddr() + e.nr_pages() * kPageSize, &chain));
    else
      chain.runs.push_back({e.vaddr(), e.nr_pages() * kPageSize, 0, e.data_offset()});
  }
  return chain;
}

}  // namespace crl
