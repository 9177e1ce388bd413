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

// What a guard (a child forked to undo something should criu-lite die,
// SIGKILL too) does first, then its wait: a session of its own, every
// signal blocked, no fd kept but FD (a page server's connection must see
// criu-lite go); it waits for a byte on FD or its EOF (criu-lite closed
// it, or died) and returns read()'s result: 1 or 0. Only system calls, as
// between fork and exit in a process that may have threads.
long GuardWait(int fd);

}  // namespace crl
