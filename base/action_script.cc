#include "base/action_script.h"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

extern char** environ;

namespace crl {

Status ActionScripts::Run(const char* action) const {
  if (notifier_) TRY(notifier_(action, init_pid_));
  if (scripts_.empty()) return Ok{};
  // The environment is made here, not in the child: criu-lite may have
  // threads, and a child of a threaded process must not allocate.
  std::vector<std::string> vars = {std::string("CRTOOLS_SCRIPT_ACTION=") + action,
                                   "CRTOOLS_IMAGE_DIR=" + image_dir_};
  if (init_pid_ > 0) vars.push_back("CRTOOLS_INIT_PID=" + std::to_string(init_pid_));
  std::vector<char*> env;
  for (std::string& v : vars) env.push_back(v.data());
  for (char** e = environ; *e; e++)
    if (strncmp(*e, "CRTOOLS_", 8) != 0) env.push_back(*e);
  env.push_back(nullptr);
  for (const std::string& script : scripts_) {
    LOG_INFO("action script %s: %s", script.c_str(), action);
    char* argv[] = {const_cast<char*>(script.c_str()), nullptr};
    pid_t pid;
    int err = posix_spawn(&pid, script.c_str(), nullptr, nullptr, argv, env.data());
    if (err) return ErrnoError(err, "--action-script %s (%s)", script.c_str(), action);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return MakeError("--action-script %s failed at %s (%s %d)", script.c_str(), action,
                       WIFEXITED(status) ? "exit status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  return Ok{};
}

}  // namespace crl
