// The sending side of the page server protocol: an ImageOutput that streams
// a dump's files to a page server, one image directory per pass.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/image_output.h"
#include "pageserver/channel.h"

namespace crl {

class PageServerSender : public ImageOutput {
 public:
  // Connects to ADDRESS:PORT and says hello; TIMEOUT: seconds without
  // progress before the connection counts as stalled.
  static Result<std::unique_ptr<PageServerSender>> Connect(const std::string& address, int port,
                                                           int timeout, const TlsOptions& tls = {});
  // Starts image directory DIR (a name under the server's -D).
  Status Open(const std::string& dir);
  Status PutFile(const std::string& name, const std::string& data) override;
  Status AppendFile(const std::string& name, const void* data, size_t len) override;
  Status AppendPages(const std::string& name, const PagePlace& at, const void* data,
                     size_t len) override;
  Status Symlink(const std::string& name, const std::string& target) override;
  // The directory is complete; returns once the server has it in place.
  Status Commit() override;
  // Asks a server started with --restore to restore DIR; returns once the
  // tree is restored and held there (not running: see Go()), with its root
  // PID and how long the restore took there.
  Result<std::pair<int, uint64_t>> RequestRestore(const std::string& dir);
  // After RequestRestore, once this side's copy of the tree is killed: the
  // server's copy, held until now, runs. Ok once it says so.
  Status Go();
  Status Done();
  uint64_t bytes_sent() const { return bytes_; }

 private:
  Status Expect(const char* what);
  Status Append(const std::string& name, const PagePlace* at, const void* data, size_t len);
  std::string peer_, dir_;
  ScopedFd fd_;
  std::unique_ptr<Channel> channel_;
  uint64_t bytes_ = 0;
};

}  // namespace crl
