#include "restore/restore.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>

#include "images/registers_image.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/page_file.h"
#include "kernel/kernel_probe.h"
#include "kernel/log.h"
#include "kernel/proc_parsers.h"
#include "restore/puppet.h"
#include "restore/task_restore.h"

namespace crl {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t Usec(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

struct TaskImages {
  pid_t pid = 0;
  img::TaskCore core;
  img::MmState mm;
  img::Pagemap pagemap;
  img::Fds fds;
};

char ProcessState(pid_t pid) {
  auto stat = ReadFileToString(Format("/proc/%d/stat", pid));
  if (!stat.ok()) return 0;
  auto st = ParseProcStat(*stat);
  return st.ok() ? st->state : 0;
}

// Everything is read and checked before any task exists.
Result<TaskImages> LoadTask(const ImageDir& dir, pid_t pid, const RestoreOptions& opts) {
  TaskImages t;
  t.pid = pid;
  TRY(ReadImage(dir.Core(pid), ImageKind::kCore, &t.core));
  TRY(ReadImage(dir.Mm(pid), ImageKind::kMm, &t.mm));
  TRY(ReadImage(dir.Pagemap(pid), ImageKind::kPagemap, &t.pagemap));
  TRY(ReadImage(dir.Fds(pid), ImageKind::kFds, &t.fds));
  if (t.core.pid() != pid || t.core.threads_size() != 1)
    return MakeError("%s does not describe one thread of PID %d", dir.Core(pid).c_str(), pid);
  if (t.core.threads(0).xstate().empty())
    return MakeError("%s has no FPU state", dir.Core(pid).c_str());
  for (const img::Fd& f : t.fds.fds()) {
    if (f.kind() == img::Fd::INHERITED && !opts.shell_job)
      return MakeError("fd %d of PID %d was dumped with --shell-job (%s); restore with --shell-job",
                       f.fd(), pid, f.path().c_str());
    if (f.kind() != img::Fd::INHERITED && access(f.path().c_str(), F_OK) < 0)
      return ErrnoError("fd %d of PID %d: %s", f.fd(), pid, f.path().c_str());
  }
  TRY(ValidateVmas(t.mm));
  // A process killed by the dump lingers as a zombie until its parent reaps
  // it, holding the PID: give the parent a moment.
  for (int i = 0; i < 200 && ProcessState(pid) == 'Z'; i++) usleep(10000);
  if (kill(pid, 0) == 0 || errno != ESRCH) {
    std::string comm = "?";
    if (FILE* f = fopen(Format("/proc/%d/comm", pid).c_str(), "re")) {
      char buf[64] = {};
      if (fgets(buf, sizeof buf, f)) comm = std::string(buf, strcspn(buf, "\n"));
      fclose(f);
    }
    return MakeError("PID %d is already in use (by %s); a restored process gets its own PID back",
                     pid, comm.c_str());
  }
  return t;
}

std::vector<std::pair<uint64_t, uint64_t>> VmaRanges(const img::MmState& mm) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const img::Vma& v : mm.vmas()) out.push_back({v.start(), v.end()});
  return out;
}

uint64_t SpecialBytes(const img::MmState& mm) {
  uint64_t n = 0;
  for (const img::Vma& v : mm.vmas())
    if (v.kind() == img::Vma::VDSO || v.kind() == img::Vma::VVAR ||
        v.kind() == img::Vma::VVAR_VCLOCK)
      n += v.end() - v.start();
  return n + (64 << 10);
}

struct Phases {
  img::Stats stats;
  Clock::time_point last = Clock::now();
  void Mark(const char* name) {
    auto now = Clock::now();
    img::Phase* p = stats.add_phases();
    p->set_name(name);
    p->set_usec(Usec(last, now));
    last = now;
  }
};

Status BuildTask(Puppet& p, const TaskImages& t, PageReader& pages, const RestoreOptions& opts,
                 Phases& ph) {
  int keep = (opts.pages == PagePlacement::kRead && pages.raw()) ? pages.fd() : -1;
  TRY(CloseInheritedFds(p, keep, t.fds).Context("closing criu-lite's files"));
  TRY(ClearAddressSpace(p, t.mm).Context("clearing the address space"));
  TRY(MapVmas(p, t.mm).Context("mapping VMAs"));
  ph.Mark("map");
  TRY(PlacePages(p, pages, opts.pages).Context("placing pages"));
  if (keep >= 0) TRY(p.rs().Checked("close(pages file)", SYS_close, keep));
  TRY(FinishVmas(p, t.mm).Context("setting protections"));
  ph.Mark("pages");
  TRY(RestoreFds(p, t.fds).Context("restoring files"));
  TRY(RestoreProcessState(p, t.core).Context("restoring process state"));
  TRY(RestoreMmFields(p, t.mm).Context("restoring mm fields"));
  TRY(RestoreSignals(p, t.core).Context("restoring signals"));
  TRY(RestoreTimersAndLimits(p, t.core).Context("restoring timers and limits"));
  const img::ThreadCore& th = t.core.threads(0);
  std::vector<uint8_t> xstate(th.xstate().begin(), th.xstate().end());
  // Last remote syscall: drop the blob. The task stops at the syscall's exit
  // and never returns to the unmapped instruction: its registers come next.
  TRY(p.rs().Checked("munmap(blob)", SYS_munmap, p.blob().start, p.blob().size));
  TRY(SetXstate(p.pid(), xstate));
  TRY(SetSigmask(p.pid(), th.blocked()));
  ph.Mark("state");
  return Ok{};
}

Status WritePidfile(const std::string& path, pid_t pid) {
  FILE* f = fopen(path.c_str(), "we");
  if (!f) return ErrnoError("fopen(%s)", path.c_str());
  fprintf(f, "%d", pid);
  if (fclose(f) != 0) return ErrnoError("writing %s", path.c_str());
  return Ok{};
}

}  // namespace

Result<int> Restore(const RestoreOptions& opts) {
  auto t_start = Clock::now();
  Phases ph;
  ImageDir dir(opts.images_dir);
  img::Inventory inv = TRY(dir.ReadInventory());
  if (inv.pids_size() != 1)
    return MakeError("%s lists %d tasks; this criu-lite restores single processes only",
                     dir.Inventory().c_str(), inv.pids_size());
  if (!Kernel().prctl_set_mm_map)
    return MakeError("this kernel lacks PR_SET_MM_MAP (CONFIG_CHECKPOINT_RESTORE): cannot restore");
  pid_t pid = inv.root_pid();
  TaskImages t = TRY(LoadTask(dir, pid, opts));
  PageReader pages = TRY(PageReader::Open(opts.images_dir, t.pagemap));
  ph.Mark("read-images");

  Blob blob = TRY(MapBlob(VmaRanges(t.mm), SpecialBytes(t.mm)));
  auto puppet_r = Puppet::Create(pid, blob, Kernel().clone3_set_tid);
  UnmapBlob(blob);  // the puppet has its own copy now
  if (!puppet_r.ok()) return puppet_r.error();
  std::unique_ptr<Puppet> puppet = std::move(*puppet_r);
  ph.Mark("fork");

  Status built = BuildTask(*puppet, t, pages, opts, ph);
  if (!built.ok())
    return MakeError("restoring PID %d: %s", pid, built.error().message.c_str());
  if (!opts.pidfile.empty()) TRY(WritePidfile(opts.pidfile, pid));
  TRY(puppet->Release(RegsFromImage(t.core.threads(0).regs())));
  ph.Mark("resume");

  ph.stats.set_kind("restore");
  ph.stats.set_page_placement(PagePlacementName(opts.pages));
  ph.stats.set_pages_written(t.pagemap.total_pages());
  ph.stats.set_total_usec(Usec(t_start, Clock::now()));
  Status s = WriteImage(dir.Stats("restore"), ImageKind::kStats, ph.stats);
  if (!s.ok()) LOG_WARN("writing restore stats: %s", s.error().message.c_str());
  LOG_INFO("restored PID %d in %.3f s", pid, ph.stats.total_usec() / 1e6);

  if (opts.detached) return 0;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid(%d)", pid);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

}  // namespace crl
