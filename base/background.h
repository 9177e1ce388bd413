// What a helper process criu-lite leaves behind does first (the write
// tracking's holder, the lazy-pages guard and daemon): it is nobody's
// terminal job and holds nothing of anyone else's.
#pragma once

#include <set>

namespace crl {

// A session of its own; the terminal's signals (and SIGPIPE) ignored;
// stdin, stdout and stderr on /dev/null unless in KEEP.
void DetachFromTerminal(const std::set<int>& keep);

// Closes every fd but those in KEEP: a pipe end or socket of a restored
// tree held here would keep it from seeing EOF.
void CloseAllBut(const std::set<int>& keep);

}  // namespace crl
