/* Shared by the probe and its test program: where the probe's socket lives. */
#ifndef WORKBENCH_PROBE_H
#define WORKBENCH_PROBE_H

#include <stdio.h>
#include <stdlib.h>
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

#endif
