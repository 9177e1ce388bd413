#include "files/sock_opt.h"

#include <sys/socket.h>

#include <cstring>

namespace crl {

std::string GetOpt(int fd, OptName o) {
  char buf[64] = {};
  socklen_t len = sizeof buf;
  if (getsockopt(fd, o.level, o.name, buf, &len) < 0) return {};
  if (o.level == SOL_SOCKET && o.name == SO_BINDTODEVICE)
    return std::string(buf, strnlen(buf, len));
  return std::string(buf, len);
}

void AddIfDiffers(int sock, int fresh, OptName o,
                  google::protobuf::RepeatedPtrField<img::SockOpt>* out) {
  std::string v = GetOpt(sock, o);
  if (v.empty() || v == GetOpt(fresh, o)) return;
  img::SockOpt* opt = out->Add();
  opt->set_level(o.level);
  opt->set_name(o.name);
  opt->set_value(v);
}

Status SetOpt(int fd, const img::SockOpt& o, int fd_no) {
  std::string v = o.value();
  // What SO_RCVBUF and SO_SNDBUF read back is twice what was set.
  if (o.level() == SOL_SOCKET && (o.name() == SO_RCVBUF || o.name() == SO_SNDBUF) &&
      v.size() == sizeof(int)) {
    int half;
    memcpy(&half, v.data(), sizeof half);
    half /= 2;
    v.assign(reinterpret_cast<const char*>(&half), sizeof half);
  }
  if (setsockopt(fd, o.level(), o.name(), v.data(), v.size()) < 0)
    return ErrnoError("setsockopt(%d, %d) of fd %d", o.level(), o.name(), fd_no);
  return Ok{};
}

}  // namespace crl
