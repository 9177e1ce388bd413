#include "pageserver/wire.h"

#include <endian.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include "base/interrupt.h"

namespace crl {

Status SetSocketTimeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return ErrnoError("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)");
  return Ok{};
}

Status SendHeader(Channel& c, const wire::Header& h) {
  std::string body;
  h.SerializeToString(&body);
  uint32_t len = htole32(body.size());
  std::string frame(reinterpret_cast<const char*>(&len), 4);
  frame += body;
  return c.Send(frame.data(), frame.size());
}

Result<wire::Header> RecvHeader(Channel& c) {
  uint32_t len;
  TRY(c.Recv(&len, 4));
  len = le32toh(len);
  if (len > kMaxHeaderBytes)
    return MakeError(
        "the peer does not speak the criu-lite page server protocol (a %u-byte "
        "header)",
        len);
  std::string body(len, '\0');
  TRY(c.Recv(body.data(), len));
  wire::Header h;
  if (!h.ParseFromString(body))
    return MakeError("the peer does not speak the criu-lite page server protocol (garbage)");
  return h;
}

const char* WireTypeName(wire::Header::Type t) { return wire::Header::Type_Name(t).c_str(); }

}  // namespace crl
