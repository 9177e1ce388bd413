#include "pageserver/sender.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "pageserver/wire.h"

namespace crl {

Result<std::unique_ptr<PageServerSender>> PageServerSender::Connect(const std::string& address,
                                                                    int port, int timeout,
                                                                    const TlsOptions& tls) {
  auto s = std::unique_ptr<PageServerSender>(new PageServerSender());
  s->peer_ = Format("%s:%d", address.c_str(), port);
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return MakeError("page server %s: %s", s->peer_.c_str(), gai_strerror(rc));
  s->fd_.reset(socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s->fd_.valid()) {
    freeaddrinfo(res);
    return ErrnoError("socket");
  }
  TRY(SetSocketTimeouts(s->fd_.get(), timeout));
  rc = connect(s->fd_.get(), res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc < 0) return ErrnoError("connecting to the page server at %s", s->peer_.c_str());
  int one = 1;
  setsockopt(s->fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (tls.on)
    s->channel_ =
        TRY(TlsClient(s->fd_.get(), tls, address, timeout).Context("page server " + s->peer_));
  else
    s->channel_ = PlainChannel(s->fd_.get());
  wire::Header h;
  h.set_type(wire::Header::HELLO);
  h.set_version(kWireVersion);
  TRY(SendHeader(*s->channel_, h).Context("page server " + s->peer_));
  TRY(s->Expect("hello"));
  return s;
}

Status PageServerSender::Expect(const char* what) {
  auto h = RecvHeader(*channel_);
  if (!h.ok())
    return MakeError("page server %s, waiting for its answer to %s: %s", peer_.c_str(), what,
                     h.error().message.c_str());
  if (h->type() == wire::Header::ERROR)
    return MakeError("page server %s refused %s: %s", peer_.c_str(), what, h->message().c_str());
  if (h->type() != wire::Header::ACK && h->type() != wire::Header::RESTORED)
    return MakeError("page server %s answered %s with %s", peer_.c_str(), what,
                     WireTypeName(h->type()));
  return Ok{};
}

Status PageServerSender::Open(const std::string& dir) {
  dir_ = dir;
  wire::Header h;
  h.set_type(wire::Header::OPEN);
  h.set_dir(dir);
  return SendHeader(*channel_, h).Context("page server " + peer_);
}

Status PageServerSender::PutFile(const std::string& name, const std::string& data) {
  wire::Header h;
  h.set_type(wire::Header::PUT);
  h.set_name(name);
  h.set_payload_len(data.size());
  TRY(SendHeader(*channel_, h).Context("page server " + peer_));
  TRY(channel_->Send(data.data(), data.size()).Context("page server " + peer_));
  bytes_ += data.size();
  return Ok{};
}

Status PageServerSender::AppendFile(const std::string& name, const void* data, size_t len) {
  return Append(name, nullptr, data, len);
}

Status PageServerSender::AppendPages(const std::string& name, const PagePlace& at, const void* data,
                                     size_t len) {
  return Append(name, &at, data, len);
}

Status PageServerSender::Append(const std::string& name, const PagePlace* at, const void* data,
                                size_t len) {
  wire::Header h;
  h.set_type(wire::Header::APPEND);
  h.set_name(name);
  h.set_payload_len(len);
  if (at) {
    h.set_vaddr(at->vaddr);
    h.set_vma_start(at->vma_start);
    h.set_vma_end(at->vma_end);
    h.set_vma_flags(at->flags);
  }
  TRY(SendHeader(*channel_, h).Context("page server " + peer_));
  TRY(channel_->Send(data, len).Context("page server " + peer_));
  bytes_ += len;
  return Ok{};
}

Status PageServerSender::Symlink(const std::string& name, const std::string& target) {
  wire::Header h;
  h.set_type(wire::Header::SYMLINK);
  h.set_name(name);
  h.set_target(target);
  return SendHeader(*channel_, h).Context("page server " + peer_);
}

Status PageServerSender::Commit() {
  wire::Header h;
  h.set_type(wire::Header::COMMIT);
  h.set_dir(dir_);
  TRY(SendHeader(*channel_, h).Context("page server " + peer_));
  return Expect(("committing " + dir_).c_str());
}

Result<std::pair<int, uint64_t>> PageServerSender::RequestRestore(const std::string& dir) {
  wire::Header h;
  h.set_type(wire::Header::RESTORE);
  h.set_dir(dir);
  TRY(SendHeader(*channel_, h).Context("page server " + peer_));
  auto r = RecvHeader(*channel_);
  if (!r.ok())
    return MakeError("page server %s, restoring %s: %s", peer_.c_str(), dir.c_str(),
                     r.error().message.c_str());
  if (r->type() == wire::Header::ERROR)
    return MakeError("the destination could not restore the tree: %s", r->message().c_str());
  if (r->type() != wire::Header::RESTORED)
    return MakeError("page server %s answered the restore with %s", peer_.c_str(),
                     WireTypeName(r->type()));
  return std::make_pair(r->pid(), r->restore_usec());
}

Status PageServerSender::Go() {
  wire::Header h;
  h.set_type(wire::Header::GO);
  TRY(SendHeader(*channel_, h).Context("page server " + peer_));
  return Expect("GO");
}

Status PageServerSender::Done() {
  wire::Header h;
  h.set_type(wire::Header::DONE);
  return SendHeader(*channel_, h);
}

}  // namespace crl
