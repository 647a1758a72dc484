/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * notify.c - telling systemd how tallyd is doing (sd_notify(3)), written out
 * instead of linking libsystemd because the protocol is a few lines:
 * $NOTIFY_SOCKET names an AF_UNIX datagram socket, a filesystem path or,
 * starting with '@', a name in the abstract namespace; each message is one
 * datagram of newline-separated VAR=value assignments.  tallyd sends READY=1
 * once recovery is done and the listeners are open, STOPPING=1 when a
 * graceful stop begins, and RELOADING=1 ... READY=1 around a SIGHUP
 * (main.c).  Without $NOTIFY_SOCKET nothing is sent; dist/tallyd.service is
 * the unit that listens.
 */
#include "server.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n;

    if (!path || !*path)
        return 1;
    n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* abstract: the length below ends the name */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                                (path[0] == '/'));
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                          (struct sockaddr *)&sa, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return sent < 0 ? -1 : 0;
}
