#include "restore/lazy_plan.h"

#include <algorithm>
#include <iterator>

namespace crl {

void SplitRunsByRanges(const std::vector<ChainedRun>& runs,
                       const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                       std::vector<ChainedRun>* inside, std::vector<ChainedRun>* outside) {
  for (const ChainedRun& r : runs) {
    for (uint64_t pos = r.vaddr, end = r.vaddr + r.len; pos < end;) {
      auto it = std::upper_bound(ranges.begin(), ranges.end(), pos,
                                 [](uint64_t v, const auto& range) { return v < range.first; });
      bool in_range = it != ranges.begin() && std::prev(it)->second > pos;
      uint64_t piece_end = in_range ? std::min(end, std::prev(it)->second)
                                    : (it == ranges.end() ? end : std::min(end, it->first));
      ChainedRun piece{pos, piece_end - pos, r.source, r.offset + (pos - r.vaddr)};
      (in_range ? *inside : *outside).push_back(piece);
      pos = piece_end;
    }
  }
}

void SplitAt(PendingMap& m, uint64_t addr) {
  auto it = m.upper_bound(addr);
  if (it == m.begin()) return;
  --it;
  uint64_t start = it->first, end = start + it->second.len;
  if (addr <= start || addr >= end) return;
  Pending tail{end - addr, it->second.source, it->second.offset + (addr - start)};
  it->second.len = addr - start;
  m.emplace(addr, tail);
}

void Erase(PendingMap& m, uint64_t a, uint64_t b) {
  SplitAt(m, a);
  SplitAt(m, b);
  m.erase(m.lower_bound(a), m.lower_bound(b));
}

void Move(PendingMap& m, uint64_t from, uint64_t to, uint64_t len) {
  SplitAt(m, from);
  SplitAt(m, from + len);
  std::vector<std::pair<uint64_t, Pending>> moved(m.lower_bound(from), m.lower_bound(from + len));
  m.erase(m.lower_bound(from), m.lower_bound(from + len));
  Erase(m, to, to + len);
  for (auto& [addr, p] : moved) m.emplace(addr - from + to, p);
}

}  // namespace crl
