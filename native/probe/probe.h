/* Shared by the probe, its test program and the native JVM agent: where the sockets live, how a command is read. */
#ifndef WORKBENCH_PROBE_H
#define WORKBENCH_PROBE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define WORKBENCH_PROBE_SOCKET_FORMAT "%s/probe-%ld.sock"
#define WORKBENCH_PROBE_DUMP_PREFIX "allocator-dump-"

/* $WORKBENCH_PROBE_DIR, else $XDG_RUNTIME_DIR/workbench, else /tmp/workbench-<euid>; 0, or -1 if it does not fit. */
static inline int workbench_probe_dir(char *out, size_t size) {
    const char *dir = getenv("WORKBENCH_PROBE_DIR");
    int n;
    if (dir != NULL && *dir != '\0')
        n = snprintf(out, size, "%s", dir);
    else if ((dir = getenv("XDG_RUNTIME_DIR")) != NULL && *dir != '\0')
        n = snprintf(out, size, "%s/workbench", dir);
    else
        n = snprintf(out, size, "/tmp/workbench-%u", (unsigned)geteuid());
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* What a client sent on `fd`, up to its first newline, its end of stream, its receive timeout or size - 1 bytes,
 * NUL-terminated (the newline, if any, kept); the bytes read. The probe's and the native JVM agent's sockets. */
static inline size_t workbench_receive_line(int fd, char *line, size_t size) {
    size_t length = 0;
    while (length < size - 1) {
        ssize_t n = recv(fd, line + length, size - 1 - length, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        length += (size_t)n;
        if (memchr(line, '\n', length) != NULL)
            break;
    }
    line[length] = '\0';
    return length;
}

#endif
