// Pages of an iterative dump: the final image's pagemap sends "in parent"
// runs up the chain of `parent` links (ImageDir::kParentLink); each run is
// found in the newest image that has it. Image-format logic: restore and
// the lazy-pages daemon place what it resolves.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "images/page_file.h"

namespace crl {

struct ChainedRun {
  uint64_t vaddr, len;
  size_t source;  // index into the chain: 0 is the final image
  uint64_t offset;
};
struct PageChain {
  std::vector<std::unique_ptr<PageReader>> sources;
  std::vector<ChainedRun> runs;  // in the final pagemap's order, each page once
};

// DIR is the final image directory, PM the task's pagemap there. Refuses a
// chain that loops, is over 1000 links long, misses a page, or holds
// compressed pages; every image followed is validated as it is read.
Result<PageChain> ResolvePageChain(const std::string& dir, pid_t pid, const img::Pagemap& pm);

}  // namespace crl
