#include "criu-lite/migrate.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "criu-lite/dump.h"
#include "criu-lite/tracking.h"
#include "images/criu_lite.pb.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/image_output.h"
#include "kernel/interrupt.h"
#include "kernel/log.h"
#include "kernel/proc_parsers.h"
#include "pageserver/sender.h"

namespace crl {
namespace {

using Clock = std::chrono::steady_clock;

double Secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

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
    auto comm = ReadFileToString(Format("/proc/%d/comm", pid));
    if (pid > 0 && comm.ok() && comm->rfind("criu-lite", 0) == 0) continue;
    std::filesystem::remove_all(e.path(), ec);
  }
}

}  // namespace

Status Migrate(const MigrateOptions& opts) {
  auto t_start = Clock::now();
  std::string work = opts.work_dir;
  bool temp_work = work.empty();
  if (temp_work) {
    RemoveAbandonedWorkDirs();
    std::string tmpl = Format("/tmp/criu-lite-migrate-%d-XXXXXX", getpid());
    if (!mkdtemp(tmpl.data())) return ErrnoError("mkdtemp");
    work = tmpl;
  }
  struct Cleanup {
    std::string dir;
    bool on;
    ~Cleanup() {
      if (on) std::filesystem::remove_all(dir);
    }
  } cleanup{work, temp_work};
  // A migration that fails ends the write tracking its passes started.
  std::string prev;
  struct EndTracking {
    const std::string& work;
    const std::string& prev;
    bool on = true;
    ~EndTracking() {
      if (on && !prev.empty()) Tracker::EndChain(work + "/" + prev);
    }
  } end_tracking{work, prev};
  auto sender = TRY(PageServerSender::Connect(opts.host, opts.port, opts.timeout, opts.tls));
  // Names of this migration's own on the destination, which never replaces
  // images: several migrations can go to one page server.
  std::string tag = Format(
      "m%d-%lx", opts.pid,
      static_cast<unsigned long>(time(nullptr)) ^ (static_cast<unsigned long>(getpid()) << 20));

  std::vector<PassRow> rows;
  std::string stop_reason = "--max-iters reached";
  auto last_pass = Clock::now();
  fprintf(stderr, "%-6s %10s %12s %9s %12s %9s\n", "pass", "pages", "bytes", "seconds",
          "dirty MiB/s", "stop ms");
  if (opts.max_iters == 0) stop_reason = "no pre-copy (--max-iters 0)";
  for (int i = 1; i <= opts.max_iters; i++) {
    TRY(CheckStop());
    std::string name = Format("%s-p%d", tag.c_str(), i);
    TRY(sender->Open(name));
    LocalImageOutput local(work + "/" + name);
    TeeImageOutput tee(&local, sender.get());
    DumpOptions d;
    d.pid = opts.pid;
    d.images_dir = work + "/" + name;
    d.pre_dump = true;
    d.leave_running = true;
    if (!prev.empty()) d.prev_images_dir = "../" + prev;
    d.output = &tee;
    d.tracking_owner = getpid();
    auto t0 = Clock::now();
    TRY(Dump(d).Context(Format("pre-copy pass %d", i)));
    auto t1 = Clock::now();
    img::Stats st;
    TRY(ReadImage(ImageDir(d.images_dir).Stats("dump"), ImageKind::kStats, &st));
    PassRow row{name, st.pages_written(),    st.bytes_written(), Secs(t0, t1),
                0,    st.frozen_usec() / 1e6};
    if (i > 1) row.dirty_mib_s = st.pages_written() * 4096.0 / (1 << 20) / Secs(last_pass, t0);
    last_pass = t0;
    fprintf(stderr, "%-6d %10lu %12lu %9.3f %12s %9.1f\n", i, row.pages, row.bytes, row.seconds,
            i > 1 ? Format("%.1f", row.dirty_mib_s).c_str() : "-", row.stopped_s * 1000);
    double bandwidth = row.bytes / std::max(row.seconds, 1e-6);
    rows.push_back(row);
    prev = name;
    if (i == opts.max_iters) break;
    if (row.pages < opts.min_pages) {
      stop_reason = Format("converged: %lu pages < %lu", row.pages, opts.min_pages);
      break;
    }
    if (rows.size() > 1 && row.pages >= rows[rows.size() - 2].pages) {
      stop_reason = "the dirty set stopped shrinking";
      break;
    }
    if (i > 1 && row.pages * 4096.0 / bandwidth * 1000 < opts.downtime_target_ms) {
      stop_reason =
          Format("the last delta fits the %d ms downtime target", opts.downtime_target_ms);
      break;
    }
  }

  // Freeze, send the last delta and the state, restore on the destination;
  // kill the source only once the destination runs the tree.
  std::string final_name = tag + "-final";
  TRY(sender->Open(final_name));
  std::string final_dir = work + "/" + final_name;
  LocalImageOutput local(final_dir);
  TeeImageOutput tee(&local, sender.get());
  DumpOptions f;
  f.pid = opts.pid;
  f.images_dir = final_dir;
  if (!prev.empty()) {
    f.prev_images_dir = "../" + prev;
    f.track_mem = true;
  }
  f.output = &tee;
  uint64_t restore_usec = 0;
  auto t_final = Clock::now();
  Clock::time_point t_sent, t_restored;
  bool source_killed = false;
  f.before_release = [&]() -> Result<bool> {
    t_sent = Clock::now();
    auto r = sender->RequestRestore(final_name);
    if (!r.ok()) return r.error();
    restore_usec = r->second;
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
    TRY(sender->Go());
    t_restored = Clock::now();
    LOG_INFO("the destination runs the tree");
    return Ok{};
  };
  Status s = Dump(f);
  if (!s.ok() && !source_killed)
    return MakeError("migration failed, the source tree runs on: %s", s.error().message.c_str());
  if (!s.ok())
    return MakeError(
        "migration failed after the source tree was killed: %s. The destination runs its copy "
        "only if it got GO; if it did not, it killed its copy too and neither runs",
        s.error().message.c_str());
  end_tracking.on = false;  // the final dump ended it
  auto t_end = Clock::now();
  (void)sender->Done();
  img::Stats fs;
  TRY(ReadImage(ImageDir(final_dir).Stats("dump"), ImageKind::kStats, &fs));
  // Frozen: from the freeze on the source to the tree running on the
  // destination (its GO answered). The source's memory is freed after.
  auto t_freeze = t_final + std::chrono::microseconds(PhaseUsec(fs, "validate"));
  double frozen = Secs(t_freeze, t_restored);
  double scan = (PhaseUsec(fs, "collect") + PhaseUsec(fs, "scan")) / 1e6;
  double copy = PhaseUsec(fs, "memory") / 1e6;
  double restore = Secs(t_sent, t_restored);  // the request, the restore, the reply
  double restore_proper = restore_usec / 1e6;
  double transfer_and_state = std::max(0.0, Secs(t_freeze, t_sent) - scan - copy);
  fprintf(stderr, "%-6s %10lu %12lu %9.3f %12s %9.1f\n", "final", fs.pages_written(),
          fs.bytes_written(), Secs(t_final, t_end), "-", frozen * 1000);
  fprintf(stderr,
          "migrated PID %d to %s:%d: %zu pre-copy passes (%s), %lu bytes sent, %.3f s in all, "
          "frozen %.3f s (final scan %.3f s, final copy %.3f s, other state and transfer %.3f s, "
          "restore on the destination %.3f s, of which its restore proper %.3f s)\n",
          opts.pid, opts.host.c_str(), opts.port, rows.size(), stop_reason.c_str(),
          sender->bytes_sent(), Secs(t_start, t_end), frozen, scan, copy, transfer_and_state,
          restore, restore_proper);
  if (!opts.stats_file.empty()) {
    FILE* out = fopen(opts.stats_file.c_str(), "we");
    if (!out) return ErrnoError("fopen(%s)", opts.stats_file.c_str());
    fprintf(out, "{\n  \"pid\": %d,\n  \"passes\": [\n", opts.pid);
    for (size_t i = 0; i < rows.size(); i++)
      fprintf(out,
              "    {\"pass\": %zu, \"pages\": %lu, \"bytes\": %lu, \"seconds\": %.6f, "
              "\"dirty_mib_per_s\": %.3f, \"stopped_seconds\": %.6f}%s\n",
              i + 1, rows[i].pages, rows[i].bytes, rows[i].seconds, rows[i].dirty_mib_s,
              rows[i].stopped_s, i + 1 < rows.size() ? "," : "");
    fprintf(out,
            "  ],\n  \"stop_reason\": \"%s\",\n  \"final\": {\"pages\": %lu, \"bytes\": %lu},\n"
            "  \"total_bytes\": %lu,\n  \"total_seconds\": %.6f,\n  \"frozen_seconds\": %.6f,\n"
            "  \"frozen_split\": {\"final_scan\": %.6f, \"final_copy\": %.6f, "
            "\"state_and_transfer\": %.6f, \"restore_on_destination\": %.6f},\n"
            "  \"destination_restore_seconds\": %.6f\n}\n",
            stop_reason.c_str(), fs.pages_written(), fs.bytes_written(), sender->bytes_sent(),
            Secs(t_start, t_end), frozen, scan, copy, transfer_and_state, restore, restore_proper);
    fclose(out);
  }
  return Ok{};
}

}  // namespace crl
