#include "pageserver/wire.h"

#include <endian.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include "kernel/interrupt.h"

namespace crl {

Status SetSocketTimeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return ErrnoError("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)");
  return Ok{};
}

Status SendBytes(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
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

Status SendHeader(int fd, const wire::Header& h) {
  std::string body;
  h.SerializeToString(&body);
  uint32_t len = htole32(body.size());
  std::string frame(reinterpret_cast<const char*>(&len), 4);
  frame += body;
  return SendBytes(fd, frame.data(), frame.size());
}

Status RecvBytes(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = recv(fd, p, len, 0);
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

Result<wire::Header> RecvHeader(int fd) {
  uint32_t len;
  TRY(RecvBytes(fd, &len, 4));
  len = le32toh(len);
  if (len > kMaxHeaderBytes)
    return MakeError(
        "the peer does not speak the criu-lite page server protocol (a %u-byte "
        "header)",
        len);
  std::string body(len, '\0');
  TRY(RecvBytes(fd, body.data(), len));
  wire::Header h;
  if (!h.ParseFromString(body))
    return MakeError("the peer does not speak the criu-lite page server protocol (garbage)");
  return h;
}

const char* WireTypeName(wire::Header::Type t) { return wire::Header::Type_Name(t).c_str(); }

}  // namespace crl
