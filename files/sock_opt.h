// Socket options as the socket kinds carry them: read from the dumped
// socket, kept where they differ from a new socket's of the same kind (an
// option left to the kernel stays so), and set again at restore.
#pragma once

#include <string>

#include "base/result.h"
#include "images/criu_lite.pb.h"

namespace crl {

struct OptName {
  int level, name;
};

// The option's value as getsockopt gives it ("" if the socket has none;
// SO_BINDTODEVICE without its trailing zeros).
std::string GetOpt(int fd, OptName o);

// Adds O to OUT if SOCK's value differs from FRESH's (a new socket's).
void AddIfDiffers(int sock, int fresh, OptName o,
                  google::protobuf::RepeatedPtrField<img::SockOpt>* out);

// Sets O on FD (SO_RCVBUF and SO_SNDBUF: half of what was read, which is
// what the kernel doubles). FD_NO: the task's fd number, for messages.
Status SetOpt(int fd, const img::SockOpt& o, int fd_no);

}  // namespace crl
