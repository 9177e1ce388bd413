// The pure bookkeeping of --pages=lazy, apart from the processes and
// userfaultfds it serves (lazy_pages.cc) so that it is tested on its own
// (tests/unit/lazy_plan_test.cc): which runs of a chain come lazily, and
// the map of pages still missing as the tree forks, remaps and unmaps.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "images/page_chain.h"

namespace crl {

// Splits RUNS at the edges of RANGES (sorted, not overlapping): the pieces
// inside a range go to INSIDE, the rest to OUTSIDE, each in RUNS' order.
void SplitRunsByRanges(const std::vector<ChainedRun>& runs,
                       const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                       std::vector<ChainedRun>* inside, std::vector<ChainedRun>* outside);

// Pages of one mm still to be placed, by address; runs never overlap.
struct Pending {
  uint64_t len;
  size_t source;
  uint64_t offset;
};
using PendingMap = std::map<uint64_t, Pending>;

// Splits the run that straddles ADDR, so that a run starts there.
void SplitAt(PendingMap& m, uint64_t addr);
// [A, B) is no longer missing (placed, or unmapped).
void Erase(PendingMap& m, uint64_t a, uint64_t b);
// mremap moved [FROM, FROM+LEN) to TO: so did the pages still missing there
// (and whatever was missing at TO is gone).
void Move(PendingMap& m, uint64_t from, uint64_t to, uint64_t len);

}  // namespace crl
