#pragma once
// What proc::mp's SOCK_SEQPACKET transports (Queue, Manager) share: recognising such a socket in
// a handle passed by a parent, and putting one descriptor in a message as SCM_RIGHTS.

#include <sys/socket.h>

#include <cstring>

namespace proc::mp::detail {

/// Whether `fd` is a SOCK_SEQPACKET socket.
inline bool is_seqpacket(int fd) noexcept {
  int type = 0;
  socklen_t len = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

/// Room for the control data of one passed descriptor.
using OneFdControl = char[CMSG_SPACE(sizeof(int))];

/// Makes `msg` carry `fd` (SCM_RIGHTS) in `control`, which must live until the message is sent.
inline void attach_descriptor(msghdr& msg, OneFdControl& control, int fd) noexcept {
  std::memset(control, 0, sizeof control);
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
}

}  // namespace proc::mp::detail
