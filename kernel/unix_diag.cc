#include "kernel/unix_diag.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/scoped_fd.h"

namespace crl {

Result<std::map<uint64_t, UnixSocketInfo>> ListUnixSockets() {
  ScopedFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl.valid()) return ErrnoError("socket(NETLINK_SOCK_DIAG)");
  struct {
    nlmsghdr nlh;
    unix_diag_req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0u;
  msg.req.udiag_show =
      UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_VFS | UDIAG_SHOW_ICONS;
  if (send(nl.get(), &msg, sizeof msg, 0) < 0) return ErrnoError("send(NETLINK_SOCK_DIAG)");
  std::map<uint64_t, UnixSocketInfo> out;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = recv(nl.get(), buf.data(), buf.size(), 0);
    if (n < 0) return ErrnoError("recv(NETLINK_SOCK_DIAG)");
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return ErrnoError(-e->error, "UNIX_DIAG dump");
      }
      auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
      UnixSocketInfo info;
      info.ino = m->udiag_ino;
      info.type = m->udiag_type;
      info.state = m->udiag_state;
      int len = h->nlmsg_len - NLMSG_LENGTH(sizeof *m);
      for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        switch (a->rta_type) {
          case UNIX_DIAG_PEER:
            info.peer_ino = *static_cast<uint32_t*>(RTA_DATA(a));
            break;
          case UNIX_DIAG_NAME: {
            const char* p = static_cast<const char*>(RTA_DATA(a));
            size_t l = RTA_PAYLOAD(a);
            info.name =
                (l && p[0] == 0) ? "@" + std::string(p + 1, l - 1) : std::string(p, strnlen(p, l));
            break;
          }
          case UNIX_DIAG_RQLEN:
            info.rqueue = static_cast<unix_diag_rqlen*>(RTA_DATA(a))->udiag_rqueue;
            info.wqueue = static_cast<unix_diag_rqlen*>(RTA_DATA(a))->udiag_wqueue;
            break;
          case UNIX_DIAG_VFS:
            info.vfs_ino = static_cast<unix_diag_vfs*>(RTA_DATA(a))->udiag_vfs_ino;
            break;
          case UNIX_DIAG_ICONS: {
            const auto* icons = static_cast<const uint32_t*>(RTA_DATA(a));
            info.icons.assign(icons, icons + RTA_PAYLOAD(a) / sizeof *icons);
            break;
          }
          case UNIX_DIAG_SHUTDOWN:
            info.shutdown = *static_cast<uint8_t*>(RTA_DATA(a));
            break;
        }
      }
      out[info.ino] = info;
    }
  }
}

}  // namespace crl
