// The byte stream under the page server protocol: a TCP socket as it is, or
// TLS over it (GnuTLS, as CRIU) with certificates on both sides.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"

namespace crl {

// CRIU's options and defaults (--tls, --tls-cacert, --tls-cacrl,
// --tls-cert, --tls-key, --tls-no-cn-verify).
struct TlsOptions {
  bool on = false;
  std::string cacert = "/etc/pki/CA/cacert.pem";
  std::string cacrl = "/etc/pki/CA/cacrl.pem";  // used if it exists
  std::string cert = "/etc/pki/criu/cert.pem";
  std::string key = "/etc/pki/criu/private/key.pem";
  bool no_cn_verify = false;  // the client does not match the server's name
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Errors name what happened: the peer hung up mid-stream, or stalled
  // (nothing for the socket's timeout), or was interrupted by a stop signal.
  virtual Status Send(const void* data, size_t len) = 0;
  virtual Status Recv(void* data, size_t len) = 0;
  // The socket, for splice(): only a plain channel carries bytes as they are.
  virtual int plain_fd() const = 0;
  // Who the peer proved to be (its certificate's subject), or "" if nobody.
  virtual std::string peer() const = 0;
};

// FD stays owned by the caller.
std::unique_ptr<Channel> PlainChannel(int fd);
// Handshakes as the client (checking that the server's certificate names
// HOST, unless no_cn_verify) or as the server (requiring a client
// certificate); both check the peer's chain against the CA and CRL. TIMEOUT:
// seconds for the handshake.
Result<std::unique_ptr<Channel>> TlsClient(int fd, const TlsOptions& opts, const std::string& host,
                                           int timeout);
Result<std::unique_ptr<Channel>> TlsServer(int fd, const TlsOptions& opts, int timeout);

}  // namespace crl
