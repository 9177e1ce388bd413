#include "migrate/migrate.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "base/clock.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "dump/dump.h"
#include "dump/tracking.h"
#include "images/criu_lite.pb.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/image_output.h"
#include "kernel/net_lock.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "pageserver/sender.h"

namespace crl {
namespace {

struct PassRow {
  std::string name;
  uint64_t pages = 0, bytes = 0;
  double seconds = 0, dirty_mib_s = 0, stopped_s = 0;
};

uint64_t PhaseUsec(const img::Stats& s, const char* name) {
  for (const auto& p : s.phases())
    if (p.name() == name) return p.usec();
  return 0;
}

// A migration killed with SIGKILL leaves its work directory: the next one
// removes those whose criu-lite is gone.
void RemoveAbandonedWorkDirs() {
  const std::string kPrefix = "criu-lite-migrate-";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/tmp", ec)) {
    std::string name = e.path().filename();
    if (name.rfind(kPrefix, 0) != 0) continue;
    pid_t pid = atoi(name.c_str() + kPrefix.size());
    if (IsLiveCriuLite(pid)) continue;
    std::filesystem::remove_all(e.path(), ec);
  }
}

// One migration, as its phases: pre-copy passes while the tree runs, until
// a stop rule says the rest fits the freeze; then the final pass, which
// freezes the tree, sends the last delta and the state, has the
// destination build and hold its copy, kills the source and only then tells
// the destination to let its copy run (pageserver/PROTOCOL.md, "Hand-over").
class MigrateRun {
 public:
  explicit MigrateRun(const MigrateOptions& opts) : opts_(opts) {}
  ~MigrateRun() {
    // A migration that fails ends the write tracking its passes started.
    if (end_tracking_ && !prev_.empty()) Tracker::EndChain(work_ + "/" + prev_);
    std::error_code ec;
    if (temp_work_) std::filesystem::remove_all(work_, ec);
  }

  Status Run() {
    t_start_ = Clock::now();
    TRY(MakeWorkDir());
    sender_ = TRY(PageServerSender::Connect(opts_.host, opts_.port, opts_.timeout, opts_.tls));
    // Names of this migration's own on the destination, which never
    // replaces images: several migrations can go to one page server.
    tag_ = Format(
        "m%d-%lx", opts_.pid,
        static_cast<unsigned long>(time(nullptr)) ^ (static_cast<unsigned long>(getpid()) << 20));
    fprintf(stderr, "%-6s %10s %12s %9s %12s %9s\n", "pass", "pages", "bytes", "seconds",
            "dirty MiB/s", "stop ms");
    TRY(PreCopy());
    TRY(HandOver());
    end_tracking_ = false;  // the final dump ended it
    t_end_ = Clock::now();
    (void)sender_->Done();
    Report();
    return opts_.stats_file.empty() ? Ok{} : WriteJson();
  }

 private:
  Status MakeWorkDir() {
    work_ = opts_.work_dir;
    temp_work_ = work_.empty();
    if (!temp_work_) return Ok{};
    RemoveAbandonedWorkDirs();
    std::string tmpl = Format("/tmp/criu-lite-migrate-%d-XXXXXX", getpid());
    if (!mkdtemp(tmpl.data())) return ErrnoError("mkdtemp");
    work_ = tmpl;
    return Ok{};
  }

  // One dump of the pass NAME, into the work directory and the page server.
  Result<img::Stats> DumpPass(const std::string& name, DumpOptions d) {
    TRY(sender_->Open(name));
    LocalImageOutput local(work_ + "/" + name);
    TeeImageOutput tee(&local, sender_.get());
    d.pid = opts_.pid;
    d.images_dir = work_ + "/" + name;
    if (!prev_.empty()) d.prev_images_dir = "../" + prev_;
    d.output = &tee;
    d.freeze_cgroup = opts_.freeze_cgroup;
    return Dump(d);
  }

  Status PreCopy() {
    if (opts_.max_iters == 0) stop_reason_ = "no pre-copy (--max-iters 0)";
    auto last_pass = Clock::now();
    for (int i = 1; i <= opts_.max_iters; i++) {
      TRY(CheckStop());
      std::string name = Format("%s-p%d", tag_.c_str(), i);
      DumpOptions d;
      d.pre_dump = true;
      d.leave_running = true;
      d.tracking_owner = getpid();
      auto t0 = Clock::now();
      img::Stats st = TRY(DumpPass(name, d).Context(Format("pre-copy pass %d", i)));
      PassRow row{name, st.pages_written(),    st.bytes_written(), SecsBetween(t0, Clock::now()),
                  0,    st.frozen_usec() / 1e6};
      if (i > 1)
        row.dirty_mib_s = st.pages_written() * 4096.0 / (1 << 20) / SecsBetween(last_pass, t0);
      last_pass = t0;
      fprintf(stderr, "%-6d %10lu %12lu %9.3f %12s %9.1f\n", i, row.pages, row.bytes, row.seconds,
              i > 1 ? Format("%.1f", row.dirty_mib_s).c_str() : "-", row.stopped_s * 1000);
      rows_.push_back(row);
      prev_ = name;
      if (i == opts_.max_iters || Converged()) break;
    }
    return Ok{};
  }

  // The stop rules (migrate.h), after a pass that was not the last allowed.
  bool Converged() {
    const PassRow& row = rows_.back();
    double bandwidth = row.bytes / std::max(row.seconds, 1e-6);
    if (row.pages < opts_.min_pages) {
      stop_reason_ = Format("converged: %lu pages < %lu", row.pages, opts_.min_pages);
      return true;
    }
    if (rows_.size() > 1 && row.pages >= rows_[rows_.size() - 2].pages) {
      stop_reason_ = "the dirty set stopped shrinking";
      return true;
    }
    if (rows_.size() > 1 && row.pages * 4096.0 / bandwidth * 1000 < opts_.downtime_target_ms) {
      stop_reason_ =
          Format("the last delta fits the %d ms downtime target", opts_.downtime_target_ms);
      return true;
    }
    return false;
  }

  // Freeze, send the last delta and the state, restore on the destination;
  // kill the source only once the destination holds the tree.
  Status HandOver() {
    std::string final_name = tag_ + "-final";
    DumpOptions f;
    f.track_mem = !prev_.empty();
    f.tcp_established = opts_.tcp_established;
    f.tcp_close = opts_.tcp_close;
    f.action_scripts = opts_.action_scripts;
    f.ext_mounts = opts_.ext_mounts;
    f.empty_net = opts_.empty_net;
    bool source_killed = false;
    f.before_release = [&]() -> Result<bool> {
      t_sent_ = Clock::now();
      auto r = sender_->RequestRestore(final_name);
      if (!r.ok()) return r.error();
      restore_usec_ = r->second;
      destination_pid_ = r->first;
      // The destination holds its copy, built: kill ours, then let it run.
      FaultPoint("migrate-destination-ready");
      LOG_INFO(
          "the destination holds its copy: killing the source tree, then telling the "
          "destination to run it");
      source_killed = true;
      return true;
    };
    // SIGKILL is sent to every process of the source: none of its code runs
    // again. GO now, not once the kernel has freed its memory (that put 0.1 s
    // per GiB into the freeze).
    f.after_kill_signalled = [&]() -> Status {
      FaultPoint("migrate-source-killed");
      TRY(sender_->Go());
      t_restored_ = Clock::now();
      LOG_INFO("the destination runs the tree");
      return Ok{};
    };
    t_final_ = Clock::now();
    auto s = DumpPass(final_name, f);
    if (source_killed) LiftSourceLock(final_name);
    if (!s.ok() && !source_killed)
      return MakeError("migration failed, the source tree runs on: %s", s.error().message.c_str());
    if (!s.ok())
      return MakeError(
          "migration failed after the source tree was killed: %s. The destination runs its "
          "copy only if it got GO; if it did not, it killed its copy too and neither runs",
          s.error().message.c_str());
    final_ = std::move(*s);
    return Ok{};
  }

  // The source tree is dead and its connections with it (silently: in
  // repair mode), so its network lock holds nothing back any more; the
  // destination lifts its own. A lock that cannot be lifted is said, not
  // fatal: the tree runs on the destination.
  void LiftSourceLock(const std::string& final_name) {
    auto inv = ImageDir(work_ + "/" + final_name).ReadInventory();
    Status lifted = inv.ok() ? Unlock(inv->net_lock()) : Status(inv.error());
    if (!lifted.ok())
      LOG_WARN("the source's network lock may be left: %s", lifted.error().message.c_str());
  }

  // Frozen: from the freeze on the source to the tree running on the
  // destination (its GO answered). The source's memory is freed after.
  struct Split {
    double frozen, scan, copy, transfer_and_state, restore, restore_proper;
  };
  Split FrozenSplit() const {
    Split x;
    auto t_freeze = t_final_ + std::chrono::microseconds(PhaseUsec(final_, "validate"));
    x.frozen = SecsBetween(t_freeze, t_restored_);
    x.scan = (PhaseUsec(final_, "collect") + PhaseUsec(final_, "scan")) / 1e6;
    x.copy = PhaseUsec(final_, "memory") / 1e6;
    x.restore = SecsBetween(t_sent_, t_restored_);  // the request, the restore, the reply
    x.restore_proper = restore_usec_ / 1e6;
    x.transfer_and_state = std::max(0.0, SecsBetween(t_freeze, t_sent_) - x.scan - x.copy);
    return x;
  }

  void Report() const {
    Split x = FrozenSplit();
    fprintf(stderr, "%-6s %10lu %12lu %9.3f %12s %9.1f\n", "final", final_.pages_written(),
            final_.bytes_written(), SecsBetween(t_final_, t_end_), "-", x.frozen * 1000);
    fprintf(stderr,
            "migrated PID %d to %s:%d (PID %d there): %zu pre-copy passes (%s), %lu bytes sent, "
            "%.3f s in all, "
            "frozen %.3f s (final scan %.3f s, final copy %.3f s, other state and transfer "
            "%.3f s, restore on the destination %.3f s, of which its restore proper %.3f s)\n",
            opts_.pid, opts_.host.c_str(), opts_.port, destination_pid_, rows_.size(),
            stop_reason_.c_str(), sender_->bytes_sent(), SecsBetween(t_start_, t_end_), x.frozen,
            x.scan, x.copy, x.transfer_and_state, x.restore, x.restore_proper);
  }

  Status WriteJson() const {
    Split x = FrozenSplit();
    FILE* out = fopen(opts_.stats_file.c_str(), "we");
    if (!out) return ErrnoError("fopen(%s)", opts_.stats_file.c_str());
    fprintf(out, "{\n  \"pid\": %d,\n  \"destination_pid\": %d,\n  \"passes\": [\n", opts_.pid,
            destination_pid_);
    for (size_t i = 0; i < rows_.size(); i++)
      fprintf(out,
              "    {\"pass\": %zu, \"pages\": %lu, \"bytes\": %lu, \"seconds\": %.6f, "
              "\"dirty_mib_per_s\": %.3f, \"stopped_seconds\": %.6f}%s\n",
              i + 1, rows_[i].pages, rows_[i].bytes, rows_[i].seconds, rows_[i].dirty_mib_s,
              rows_[i].stopped_s, i + 1 < rows_.size() ? "," : "");
    fprintf(out,
            "  ],\n  \"stop_reason\": \"%s\",\n  \"final\": {\"pages\": %lu, \"bytes\": %lu},\n"
            "  \"total_bytes\": %lu,\n  \"total_seconds\": %.6f,\n  \"frozen_seconds\": %.6f,\n"
            "  \"frozen_split\": {\"final_scan\": %.6f, \"final_copy\": %.6f, "
            "\"state_and_transfer\": %.6f, \"restore_on_destination\": %.6f},\n"
            "  \"destination_restore_seconds\": %.6f,\n  \"net_lock_seconds\": %.6f\n}\n",
            stop_reason_.c_str(), final_.pages_written(), final_.bytes_written(),
            sender_->bytes_sent(), SecsBetween(t_start_, t_end_), x.frozen, x.scan, x.copy,
            x.transfer_and_state, x.restore, x.restore_proper, final_.net_lock_usec() / 1e6);
    fclose(out);
    return Ok{};
  }

  const MigrateOptions& opts_;
  std::string work_;
  bool temp_work_ = false;
  bool end_tracking_ = true;
  std::unique_ptr<PageServerSender> sender_;
  std::string tag_, prev_;
  std::vector<PassRow> rows_;
  std::string stop_reason_ = "--max-iters reached";
  img::Stats final_;
  uint64_t restore_usec_ = 0;
  pid_t destination_pid_ = 0;  // the root's PID there (another for a PID namespace's init)
  Clock::time_point t_start_, t_final_, t_sent_, t_restored_, t_end_;
};

}  // namespace

Status Migrate(const MigrateOptions& opts) { return MigrateRun(opts).Run(); }

}  // namespace crl
