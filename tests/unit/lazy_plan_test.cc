// The bookkeeping of lazy restore: which pages come lazily, and the map of
// pages still missing as the restored tree forks, remaps and unmaps.
#include "restore/lazy_plan.h"

#include <gtest/gtest.h>

namespace crl {
namespace {

constexpr uint64_t P = 4096;

std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> Runs(const std::vector<ChainedRun>& v) {
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> out;
  for (const ChainedRun& r : v) out.push_back({r.vaddr, r.len, r.offset});
  return out;
}

TEST(SplitRunsByRanges, PiecesFollowTheRangeEdgesAndKeepTheirFileOffsets) {
  // One run over pages 0-9 (file offset 100 pages in), one over 20-21.
  std::vector<ChainedRun> runs = {{0, 10 * P, 1, 100 * P}, {20 * P, 2 * P, 0, 0}};
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {{2 * P, 4 * P}, {8 * P, 21 * P}};
  std::vector<ChainedRun> inside, outside;
  SplitRunsByRanges(runs, ranges, &inside, &outside);
  using T = std::tuple<uint64_t, uint64_t, uint64_t>;
  EXPECT_EQ(Runs(inside),
            (std::vector<T>{{2 * P, 2 * P, 102 * P}, {8 * P, 2 * P, 108 * P}, {20 * P, P, 0}}));
  EXPECT_EQ(Runs(outside),
            (std::vector<T>{{0, 2 * P, 100 * P}, {4 * P, 4 * P, 104 * P}, {21 * P, P, P}}));
  for (const ChainedRun& r : inside) EXPECT_EQ(r.source, r.vaddr < 20 * P ? 1u : 0u);
}

TEST(SplitRunsByRanges, NoRangesLeaveEverythingOutside) {
  std::vector<ChainedRun> runs = {{0, 3 * P, 0, 0}};
  std::vector<ChainedRun> inside, outside;
  SplitRunsByRanges(runs, {}, &inside, &outside);
  EXPECT_TRUE(inside.empty());
  EXPECT_EQ(Runs(outside), Runs(runs));
}

// The map as (start, len, offset) triples.
std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> Dump(const PendingMap& m) {
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> out;
  for (const auto& [a, p] : m) out.push_back({a, p.len, p.offset});
  return out;
}
using T = std::tuple<uint64_t, uint64_t, uint64_t>;

TEST(PendingMap, EraseInsideARunLeavesBothEnds) {
  PendingMap m = {{0, {10 * P, 0, 0}}};
  Erase(m, 3 * P, 5 * P);
  EXPECT_EQ(Dump(m), (std::vector<T>{{0, 3 * P, 0}, {5 * P, 5 * P, 5 * P}}));
}

TEST(PendingMap, EraseAcrossRunsAndGaps) {
  PendingMap m = {{0, {2 * P, 0, 0}}, {4 * P, {4 * P, 0, 40 * P}}, {10 * P, {P, 0, 90 * P}}};
  Erase(m, P, 6 * P);
  EXPECT_EQ(Dump(m), (std::vector<T>{{0, P, 0}, {6 * P, 2 * P, 42 * P}, {10 * P, P, 90 * P}}));
  Erase(m, 0, 100 * P);
  EXPECT_TRUE(m.empty());
}

TEST(PendingMap, SplitAtAnEdgeOrAGapChangesNothing) {
  PendingMap m = {{2 * P, {2 * P, 0, 0}}};
  SplitAt(m, 2 * P);
  SplitAt(m, 4 * P);
  SplitAt(m, 9 * P);
  SplitAt(m, 0);
  EXPECT_EQ(Dump(m), (std::vector<T>{{2 * P, 2 * P, 0}}));
}

TEST(PendingMap, MoveCarriesTheMissingPagesAndDropsWhatWasAtTheTarget) {
  // Missing: pages 0-3 (offset 0) and 20-21 (offset 50 pages).
  PendingMap m = {{0, {4 * P, 0, 0}}, {20 * P, {2 * P, 1, 50 * P}}};
  // mremap of pages 2-5 to 19-22: pages 2-3 go to 19-20; the old 20-21
  // (under the target) are gone; 0-1 stay.
  Move(m, 2 * P, 19 * P, 4 * P);
  EXPECT_EQ(Dump(m), (std::vector<T>{{0, 2 * P, 0}, {19 * P, 2 * P, 2 * P}}));
  EXPECT_EQ(m.at(19 * P).source, 0u);
}

TEST(PendingMap, MoveToAnOverlappingPlaceKeepsEveryPageOnce) {
  PendingMap m = {{0, {8 * P, 0, 0}}};
  Move(m, 0, 2 * P, 8 * P);  // mremap may move a range onto part of itself
  EXPECT_EQ(Dump(m), (std::vector<T>{{2 * P, 8 * P, 0}}));
}

}  // namespace
}  // namespace crl
