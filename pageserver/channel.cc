#include "pageserver/channel.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/interrupt.h"
#include "base/log.h"

namespace crl {
namespace {

class Plain : public Channel {
 public:
  explicit Plain(int fd) : fd_(fd) {}
  Status Send(const void* data, size_t len) override {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
      ssize_t n = send(fd_, p, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        TRY(CheckStop());
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return MakeError("the peer stalled: nothing could be sent for the timeout");
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return MakeError("the peer hung up mid-stream");
      if (n < 0) return ErrnoError("send");
      p += n;
      len -= n;
    }
    return Ok{};
  }
  Status Recv(void* data, size_t len) override {
    char* p = static_cast<char*>(data);
    while (len > 0) {
      ssize_t n = recv(fd_, p, len, 0);
      if (n < 0 && errno == EINTR) {
        TRY(CheckStop());
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return MakeError("the peer stalled: nothing arrived for the timeout");
      if (n < 0 && errno == ECONNRESET) return MakeError("the peer hung up mid-stream");
      if (n < 0) return ErrnoError("recv");
      if (n == 0) return MakeError("the peer hung up mid-stream");
      p += n;
      len -= n;
    }
    return Ok{};
  }
  int plain_fd() const override { return fd_; }
  std::string peer() const override { return ""; }

 private:
  int fd_;
};

Error TlsError(const char* what, int rc) {
  return MakeError("TLS: %s: %s", what, gnutls_strerror(rc));
}

class Tls : public Channel {
 public:
  ~Tls() override {
    if (session_) {
      gnutls_bye(session_, GNUTLS_SHUT_WR);
      gnutls_deinit(session_);
    }
    if (cred_) gnutls_certificate_free_credentials(cred_);
  }

  Status Setup(int fd, const TlsOptions& o, bool server, const std::string& host, int timeout) {
    for (const auto& [opt, path] :
         {std::pair<const char*, const std::string&>{"--tls-cacert", o.cacert},
          {"--tls-cert", o.cert},
          {"--tls-key", o.key}})
      if (access(path.c_str(), R_OK) < 0)
        return ErrnoError("%s %s: cannot read it", opt, path.c_str());
    int rc = gnutls_certificate_allocate_credentials(&cred_);
    if (rc < 0) return TlsError("allocating credentials", rc);
    rc = gnutls_certificate_set_x509_trust_file(cred_, o.cacert.c_str(), GNUTLS_X509_FMT_PEM);
    if (rc <= 0)
      return MakeError("--tls-cacert %s: %s", o.cacert.c_str(),
                       rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
    if (access(o.cacrl.c_str(), F_OK) == 0) {
      rc = gnutls_certificate_set_x509_crl_file(cred_, o.cacrl.c_str(), GNUTLS_X509_FMT_PEM);
      if (rc < 0) return MakeError("--tls-cacrl %s: %s", o.cacrl.c_str(), gnutls_strerror(rc));
    }
    rc = gnutls_certificate_set_x509_key_file(cred_, o.cert.c_str(), o.key.c_str(),
                                              GNUTLS_X509_FMT_PEM);
    if (rc < 0)
      return MakeError("--tls-cert %s / --tls-key %s: %s", o.cert.c_str(), o.key.c_str(),
                       gnutls_strerror(rc));
    rc = gnutls_init(&session_, server ? GNUTLS_SERVER : GNUTLS_CLIENT);
    if (rc < 0) return TlsError("gnutls_init", rc);
    rc = gnutls_set_default_priority(session_);
    if (rc < 0) return TlsError("priorities", rc);
    rc = gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, cred_);
    if (rc < 0) return TlsError("credentials", rc);
    // Both sides prove who they are: the server asks for the client's
    // certificate and refuses a session without one.
    if (server) gnutls_certificate_server_set_request(session_, GNUTLS_CERT_REQUIRE);
    bool check_name = !server && !o.no_cn_verify;
    gnutls_session_set_verify_cert(session_, check_name ? host.c_str() : nullptr, 0);
    gnutls_transport_set_int(session_, fd);
    gnutls_handshake_set_timeout(session_, timeout * 1000u);
    do {
      rc = gnutls_handshake(session_);
      if (rc == GNUTLS_E_INTERRUPTED) TRY(CheckStop());
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
      gnutls_alert_send_appropriate(session_, rc);
      unsigned status = gnutls_session_get_verify_cert_status(session_);
      gnutls_datum_t out{};
      gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
      std::string why(reinterpret_cast<char*>(out.data), out.size);
      gnutls_free(out.data);
      return MakeError("TLS: the %s's certificate is refused: %s", server ? "client" : "server",
                       why.c_str());
    }
    if (rc < 0) {
      // Tell the peer why (a bad or revoked certificate...), not just hang up.
      gnutls_alert_send_appropriate(session_, rc);
      if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
        return MakeError("TLS: the %s refused the session: %s", server ? "client" : "server",
                         gnutls_alert_get_name(gnutls_alert_get(session_)));
      return TlsError("handshake", rc);
    }
    const gnutls_datum_t* certs = gnutls_certificate_get_peers(session_, nullptr);
    gnutls_x509_crt_t crt;
    if (certs && gnutls_x509_crt_init(&crt) == 0) {
      gnutls_datum_t dn{};
      if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
          gnutls_x509_crt_get_dn2(crt, &dn) == 0) {
        peer_.assign(reinterpret_cast<char*>(dn.data), dn.size);
        gnutls_free(dn.data);
      }
      gnutls_x509_crt_deinit(crt);
    }
    if (peer_.empty()) return MakeError("TLS: the peer presented no certificate");
    return Ok{};
  }

  Status Send(const void* data, size_t len) override {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
      ssize_t n = gnutls_record_send(session_, p, len);
      if (n == GNUTLS_E_INTERRUPTED) {
        TRY(CheckStop());
        continue;
      }
      if (n == GNUTLS_E_AGAIN)
        return MakeError("the peer stalled: nothing could be sent for the timeout");
      if (n < 0) return Closed(n);
      p += n;
      len -= n;
    }
    return Ok{};
  }
  Status Recv(void* data, size_t len) override {
    char* p = static_cast<char*>(data);
    while (len > 0) {
      ssize_t n = gnutls_record_recv(session_, p, len);
      if (n == GNUTLS_E_INTERRUPTED) {
        TRY(CheckStop());
        continue;
      }
      if (n == GNUTLS_E_AGAIN)
        return MakeError("the peer stalled: nothing arrived for the timeout");
      if (n == 0) return MakeError("the peer hung up mid-stream");
      if (n < 0) return Closed(n);
      p += n;
      len -= n;
    }
    return Ok{};
  }
  int plain_fd() const override { return -1; }
  std::string peer() const override { return peer_; }

 private:
  Error Closed(ssize_t rc) const {
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
      return MakeError(
          "the peer ended the TLS session: %s (it may have refused this side's "
          "certificate; see its log)",
          gnutls_alert_get_name(gnutls_alert_get(session_)));
    if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PUSH_ERROR ||
        rc == GNUTLS_E_PULL_ERROR)
      return MakeError("the peer hung up mid-stream");
    return TlsError("record", static_cast<int>(rc));
  }
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_session_t session_ = nullptr;
  std::string peer_;
};

}  // namespace

std::unique_ptr<Channel> PlainChannel(int fd) { return std::make_unique<Plain>(fd); }

Result<std::unique_ptr<Channel>> TlsClient(int fd, const TlsOptions& opts, const std::string& host,
                                           int timeout) {
  auto t = std::make_unique<Tls>();
  TRY(t->Setup(fd, opts, false, host, timeout));
  LOG_INFO("TLS: the page server is %s", t->peer().c_str());
  return std::unique_ptr<Channel>(std::move(t));
}

Result<std::unique_ptr<Channel>> TlsServer(int fd, const TlsOptions& opts, int timeout) {
  auto t = std::make_unique<Tls>();
  TRY(t->Setup(fd, opts, true, "", timeout));
  LOG_INFO("TLS: the client is %s", t->peer().c_str());
  return std::unique_ptr<Channel>(std::move(t));
}

}  // namespace crl
