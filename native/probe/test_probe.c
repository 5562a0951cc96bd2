/*
 * The probe's test subject: run as LD_PRELOAD=<allocator>:<probe> ./test_probe (either order). It allocates unusual
 * sizes, asks its own probe for statistics over the socket between steps, and prints one JSON line per step:
 *   {"label": "<step>", "answer": <the probe's answer>}   (labels: ping, before, again, after_block, after_free,
 *   after_blocks, unknown, signal_dump (with "path" instead of "answer"), dump)
 * Exit 0 when every step got an answer, 1 otherwise (with one line on stderr).
 *
 *   test_probe [--size BYTES]     the block size (default 7 MiB + 4093)
 *   test_probe --serve SECONDS    print {"label": "ready", "pid": N} and sleep: a long-running host for the probe
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define BLOCKS 1000
#define BLOCK_SIZE (1000 + 7)

static char g_answer[1 << 16];
static void *volatile g_sink;  // keeps the compiler from eliding malloc/free pairs

static int fail(const char *what) {
    fprintf(stderr, "test_probe: %s\n", what);
    return 1;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        continue;
}

/* Sends `command` to this process's probe and reads its one-line answer into g_answer; 0 or -1. */
static int ask(const char *command) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    char dir[PATH_MAX];
    if (workbench_probe_dir(dir, sizeof dir) != 0)
        return -1;
    int n = snprintf(address.sun_path, sizeof address.sun_path, WORKBENCH_PROBE_SOCKET_FORMAT, dir, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof address.sun_path)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char line[64];
    n = snprintf(line, sizeof line, "%s\n", command);
    size_t length = 0;
    int ok = write(fd, line, n) == n;
    while (ok && length < sizeof g_answer - 1) {
        ssize_t got = read(fd, g_answer + length, sizeof g_answer - 1 - length);
        if (got <= 0)
            break;
        length += got;
        if (memchr(g_answer, '\n', length) != NULL)
            break;
    }
    close(fd);
    g_answer[length] = '\0';
    g_answer[strcspn(g_answer, "\n")] = '\0';
    return ok && g_answer[0] == '{' ? 0 : -1;
}

/* Asks and prints {"label": ..., "answer": ...}; 0 or -1. */
static int step(const char *label, const char *command) {
    if (ask(command) != 0)
        return -1;
    printf("{\"label\": \"%s\", \"answer\": %s}\n", label, g_answer);
    fflush(stdout);
    return 0;
}

/* After raise(): waits up to 10 s for the probe's first dump file; 0 or -1. */
static int wait_for_signal_dump(const char *dump_dir) {
    static const char *const extensions[] = {"json", "txt", "xml"};
    char path[PATH_MAX];
    for (int tick = 0; tick < 1000; tick++) {
        for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++) {
            snprintf(path, sizeof path, "%s/" WORKBENCH_PROBE_DUMP_PREFIX "%ld-1.%s", dump_dir, (long)getpid(),
                     extensions[i]);
            if (access(path, F_OK) == 0) {
                printf("{\"label\": \"signal_dump\", \"path\": \"%s\"}\n", path);
                fflush(stdout);
                return 0;
            }
        }
        sleep_ms(10);
    }
    return -1;
}

static int serve(const char *seconds) {
    printf("{\"label\": \"ready\", \"pid\": %ld}\n", (long)getpid());
    fflush(stdout);
    sleep_ms((long)(atof(seconds) * 1000));
    return 0;
}

/* Allocates, asking the probe between steps. */
static int run(size_t size) {
    if (step("ping", "ping") != 0)
        return fail("no answer to ping: is the probe preloaded?");
    if (step("before", "stats") != 0 || step("again", "stats") != 0)
        return fail("no answer to stats");
    char *block = malloc(size);
    if (block == NULL)
        return fail("malloc failed");
    memset(block, 1, size);
    g_sink = block;
    if (step("after_block", "stats") != 0)
        return fail("no answer to stats after the block");
    free(g_sink);
    if (step("after_free", "stats") != 0)
        return fail("no answer to stats after free");
    static void *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (blocks[i] == NULL)
            return fail("malloc failed");
        memset(blocks[i], 2, BLOCK_SIZE);
        g_sink = blocks[i];
    }
    if (step("after_blocks", "stats") != 0)
        return fail("no answer to stats after the blocks");
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    if (step("unknown", "frobnicate") != 0)
        return fail("no answer to an unknown command");
    const char *dump_dir = getenv("WORKBENCH_PROBE_DUMP_DIR");
    if (dump_dir != NULL && *dump_dir != '\0') {
        raise(SIGUSR1);
        if (wait_for_signal_dump(dump_dir) != 0)
            return fail("no dump file 10 s after SIGUSR1");
    }
    if (step("dump", "dump") != 0)
        return fail("no answer to dump");
    return 0;
}

int main(int argc, char **argv) {
    size_t size = 7 * 1024 * 1024 + 4093;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--serve") == 0)
            return serve(argv[i + 1]);
        if (strcmp(argv[i], "--size") == 0)
            size = strtoull(argv[i + 1], NULL, 10);
    }
    return run(size);
}
