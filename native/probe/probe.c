/*
 * libworkbench-probe.so: preloaded beside the allocator into any process, it serves the allocator's statistics on a
 * Unix socket ($WORKBENCH_PROBE_DIR/probe-<pid>.sock) and dumps them on a signal. The fields and their mapping are
 * those of workbench/probes/allocator.py.
 *
 * Rules (see /work/shared/STYLE.md): never abort or exit the host; every failure is a return code and at most one
 * line on stderr prefixed "workbench-probe:"; answers are formatted into static buffers, so a "stats" request does not
 * allocate through the allocator it measures.
 *
 * Loaded with WORKBENCH_PROBE_SERVE=0 (the worker does, through ctypes) it is a library only: it finds the allocator
 * but serves nothing (no socket, no thread, no signal); the snapshot reader (snapshot.c) and the functions of
 * snapshot.h below answer its caller directly.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "snapshot.h"

#define PROBE_STACK_BYTES (256 * 1024)
#define TCMALLOC_STATS_BYTES (1 << 20)
#define COMMAND_MAX 64

enum backend { BACKEND_UNKNOWN, BACKEND_JEMALLOC, BACKEND_TCMALLOC, BACKEND_MIMALLOC, BACKEND_GLIBC };
static const char *const BACKEND_NAMES[] = {"unknown", "jemalloc", "tcmalloc", "mimalloc", "glibc"};

struct mallinfo2_fields {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
typedef int (*mallctlnametomib_fn)(const char *, size_t *, size_t *);
typedef int (*mallctlbymib_fn)(const size_t *, size_t, void *, size_t *, void *, size_t);
typedef void (*je_write_fn)(void *, const char *);
typedef void (*je_stats_print_fn)(je_write_fn, void *, const char *);
typedef int (*tc_property_fn)(const char *, size_t *);
typedef void (*tc_get_stats_fn)(char *, int);
typedef const char *(*tc_version_fn)(int *, int *, const char **);
typedef void (*mi_process_info_fn)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *);
typedef int (*mi_version_fn)(void);
/* mimalloc 2.0's mi_stats_t as the workbench's build (MI_STAT=2) has it: checked against the library's sizeof and
   MI_BIN_HUGE (workbench_mi_stats, native/mimalloc/statistics-and-mapped-ranges.patch), as the worker's
   MimallocBackend checks it. */
struct mi_stat_count { int64_t allocated, freed, peak, current; };
struct mi_stat_counter { int64_t total, count; };
enum { MI_BIN_HUGE_2_0 = 73 };
struct mi_stats {
    struct mi_stat_count segments, pages, reserved, committed, reset, page_committed, segments_abandoned,
        pages_abandoned, threads, normal, huge, large, malloc, segments_cache;
    struct mi_stat_counter pages_extended, mmap_calls, commit_calls, page_no_retire, searches, normal_count,
        huge_count, large_count;
    struct mi_stat_count normal_bins[MI_BIN_HUGE_2_0 + 1];
};
typedef const struct mi_stats *(*workbench_mi_stats_fn)(size_t *, size_t *);
typedef void (*mi_output_fn)(const char *, void *);
typedef void (*mi_stats_print_out_fn)(mi_output_fn, void *);
typedef struct mallinfo2_fields (*mallinfo2_fn)(void);
typedef int (*malloc_info_fn)(int, FILE *);
typedef const char *(*libc_version_fn)(void);

/* The allocator malloc resolves to, and the entry points of its statistics. */
static struct {
    enum backend kind;
    char library[PATH_MAX];
    char version[64];
    mallctl_fn mallctl;
    mallctlnametomib_fn mallctlnametomib;
    mallctlbymib_fn mallctlbymib;
    je_stats_print_fn je_stats_print;
    tc_property_fn tc_property;
    tc_get_stats_fn tc_get_stats;
    tc_version_fn tc_version;
    mi_process_info_fn mi_process_info;
    mi_version_fn mi_version;
    mi_stats_print_out_fn mi_stats_print_out;
    const struct mi_stats *mi_stats;  // the workbench build's statistics, read in place; NULL: none (Debian's)
    mallinfo2_fn mallinfo2;
    malloc_info_fn malloc_info;
    libc_version_fn libc_version;
} g_alloc;

static pid_t g_pid;
static int g_listen_fd = -1;
static int g_pipe[2] = {-1, -1};
static int g_serving;
static unsigned g_dumps;
static char g_socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char g_dump_dir[PATH_MAX];
static char g_reply[1 << 16];

/* glibc's malloc_info writes to a FILE: one stream made at load, with a static buffer, reused for every call. */
static FILE *g_xml_stream;
static char g_xml_buffer[8192];
static struct {
    int fd;
    unsigned heaps;
    unsigned matched;
} g_xml = {-1, 0, 0};

/* One line on stderr, without stdio (no allocation, no lock shared with the host). */
static void warn(const char *format, ...) {
    char line[512];
    int n = snprintf(line, sizeof line, "workbench-probe: ");
    va_list args;
    va_start(args, format);
    int m = vsnprintf(line + n, sizeof line - n - 1, format, args);
    va_end(args);
    n += m < 0 ? 0 : (m >= (int)(sizeof line - n - 1) ? (int)(sizeof line - n - 2) : m);
    line[n++] = '\n';
    ssize_t written = write(STDERR_FILENO, line, n);
    (void)written;
}

static int write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        size -= n;
    }
    return 0;
}

/* --- finding the allocator ---------------------------------------------------------------------------------- */

/* `name` only if it is defined in the object at `base` (not in one of its dependencies). */
static void *symbol_in(void *handle, const void *base, const char *name) {
    void *address = dlsym(handle, name);
    Dl_info info;
    if (address == NULL || dladdr(address, &info) == 0 || info.dli_fbase != base)
        return NULL;
    return address;
}

/* Which library `malloc` resolves to, judged by what that library exports (like allocator.detect()). */
static void detect_allocator(void) {
    void *malloc_address = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (malloc_address == NULL || dladdr(malloc_address, &info) == 0 || info.dli_fname == NULL)
        return;
    snprintf(g_alloc.library, sizeof g_alloc.library, "%s", info.dli_fname);
    void *handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == NULL)
        handle = RTLD_DEFAULT;  // malloc is in the executable itself
    const void *base = info.dli_fbase;
    if ((g_alloc.mallctl = (mallctl_fn)symbol_in(handle, base, "mallctl")) != NULL) {
        g_alloc.kind = BACKEND_JEMALLOC;
        g_alloc.je_stats_print = (je_stats_print_fn)symbol_in(handle, base, "malloc_stats_print");
        g_alloc.mallctlnametomib = (mallctlnametomib_fn)symbol_in(handle, base, "mallctlnametomib");
        g_alloc.mallctlbymib = (mallctlbymib_fn)symbol_in(handle, base, "mallctlbymib");
    } else if ((g_alloc.tc_property = (tc_property_fn)symbol_in(handle, base, "MallocExtension_GetNumericProperty"))) {
        g_alloc.kind = BACKEND_TCMALLOC;
        g_alloc.tc_get_stats = (tc_get_stats_fn)symbol_in(handle, base, "MallocExtension_GetStats");
        g_alloc.tc_version = (tc_version_fn)symbol_in(handle, base, "tc_version");
    } else if ((g_alloc.mi_process_info = (mi_process_info_fn)symbol_in(handle, base, "mi_process_info")) != NULL) {
        g_alloc.kind = BACKEND_MIMALLOC;
        g_alloc.mi_version = (mi_version_fn)symbol_in(handle, base, "mi_version");
        g_alloc.mi_stats_print_out = (mi_stats_print_out_fn)symbol_in(handle, base, "mi_stats_print_out");
        workbench_mi_stats_fn stats = (workbench_mi_stats_fn)symbol_in(handle, base, "workbench_mi_stats");
        size_t stats_size = 0, bin_huge = 0;
        const struct mi_stats *address = stats != NULL ? stats(&stats_size, &bin_huge) : NULL;
        if (address != NULL && stats_size == sizeof(struct mi_stats) && bin_huge == MI_BIN_HUGE_2_0)
            g_alloc.mi_stats = address;
    } else if (strstr(info.dli_fname, "libc.so") != NULL &&
               (g_alloc.mallinfo2 = (mallinfo2_fn)symbol_in(handle, base, "mallinfo2")) != NULL) {
        g_alloc.kind = BACKEND_GLIBC;
        g_alloc.malloc_info = (malloc_info_fn)symbol_in(handle, base, "malloc_info");
        g_alloc.libc_version = (libc_version_fn)symbol_in(handle, base, "gnu_get_libc_version");
    }
}

/* The allocator's version, read once (from the probe thread, not the constructor). */
static const char *allocator_version(void) {
    if (g_alloc.version[0] != '\0')
        return g_alloc.version;
    const char *text = NULL;
    size_t size = sizeof text;
    if (g_alloc.kind == BACKEND_JEMALLOC && g_alloc.mallctl("version", &text, &size, NULL, 0) != 0)
        text = NULL;
    if (g_alloc.kind == BACKEND_TCMALLOC && g_alloc.tc_version != NULL)
        text = g_alloc.tc_version(NULL, NULL, NULL);
    if (g_alloc.kind == BACKEND_GLIBC && g_alloc.libc_version != NULL)
        text = g_alloc.libc_version();
    if (g_alloc.kind == BACKEND_MIMALLOC && g_alloc.mi_version != NULL) {
        int n = g_alloc.mi_version();
        snprintf(g_alloc.version, sizeof g_alloc.version, "%d.%d.%d", n / 100, n / 10 % 10, n % 10);
    } else if (text != NULL) {
        snprintf(g_alloc.version, sizeof g_alloc.version, "%s", text);
    }
    return g_alloc.version[0] != '\0' ? g_alloc.version : NULL;
}

/* --- JSON into a fixed buffer -------------------------------------------------------------------------------- */

struct out {
    char *buffer;
    size_t size;
    size_t length;
};

static void out_printf(struct out *o, const char *format, ...) {
    if (o->length >= o->size)
        return;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(o->buffer + o->length, o->size - o->length, format, args);
    va_end(args);
    o->length = n < 0 ? o->size : (o->length + n > o->size ? o->size : o->length + n);
}

static void out_string(struct out *o, const char *text) {
    if (text == NULL) {
        out_printf(o, "null");
        return;
    }
    out_printf(o, "\"");
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            out_printf(o, "\\%c", *c);
        else if (*c < 0x20)
            out_printf(o, "\\u%04x", *c);
        else
            out_printf(o, "%c", *c);
    }
    out_printf(o, "\"");
}

static void out_size(struct out *o, const char *key, int known, size_t value) {
    if (known)
        out_printf(o, ", \"%s\": %zu", key, value);
    else
        out_printf(o, ", \"%s\": null", key);
}

/* ", \"key\": value" inside "raw", where the first entry has no comma. */
static void out_raw(struct out *o, int *first, const char *key, size_t value) {
    out_printf(o, "%s\"%s\": %zu", *first ? "" : ", ", key, value);
    *first = 0;
}

/* --- statistics per backend: the six fields, then "raw" -------------------------------------------------------- */

static void jemalloc_stats(struct out *o) {
    static const char *const names[] = {"allocated", "active", "metadata", "resident", "mapped", "retained"};
    uint64_t epoch = 1;
    g_alloc.mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);  // refresh the merged statistics
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char key[32], field[32];
        size_t value = 0, size = sizeof value;
        snprintf(key, sizeof key, "stats.%s", names[i]);
        snprintf(field, sizeof field, "%s_bytes", names[i]);
        int known = g_alloc.mallctl(key, &value, &size, NULL, 0) == 0;
        out_size(o, field, known, value);
    }
    unsigned narenas = 0;
    size_t size = sizeof narenas;
    int first = 1;
    out_printf(o, ", \"raw\": {");
    if (g_alloc.mallctl("arenas.narenas", &narenas, &size, NULL, 0) == 0)
        out_raw(o, &first, "narenas", narenas);
    out_printf(o, "}");
}

static void tcmalloc_stats(struct out *o) {
    static const char *const names[] = {
        "generic.current_allocated_bytes", "generic.heap_size", "generic.total_physical_bytes",
        "tcmalloc.pageheap_free_bytes", "tcmalloc.pageheap_unmapped_bytes", "tcmalloc.central_cache_free_bytes",
        "tcmalloc.transfer_cache_free_bytes", "tcmalloc.thread_cache_free_bytes",
    };
    enum { ALLOCATED, HEAP, PHYSICAL, FREE, UNMAPPED, COUNT = 8 };
    size_t values[COUNT] = {0};
    int known[COUNT] = {0};
    for (int i = 0; i < COUNT; i++)
        known[i] = g_alloc.tc_property(names[i], &values[i]) != 0;
    int spans = known[HEAP] && known[FREE] && known[UNMAPPED];
    int mapped = known[HEAP] && known[UNMAPPED];
    out_size(o, "allocated_bytes", known[ALLOCATED], values[ALLOCATED]);
    // Spans handed out of the page heap: allocated plus what sits in the central/transfer/thread caches.
    out_size(o, "active_bytes", spans, values[HEAP] - values[FREE] - values[UNMAPPED]);
    out_size(o, "metadata_bytes", 0, 0);
    out_size(o, "resident_bytes", known[PHYSICAL], values[PHYSICAL]);
    out_size(o, "mapped_bytes", mapped, values[HEAP] - values[UNMAPPED]);
    out_size(o, "retained_bytes", known[UNMAPPED], values[UNMAPPED]);
    int first = 1;
    out_printf(o, ", \"raw\": {");
    for (int i = 0; i < COUNT; i++)
        if (known[i])
            out_raw(o, &first, names[i], values[i]);
    out_printf(o, "}");
}

static size_t mi_current(const struct mi_stat_count *count) {
    int64_t value = __atomic_load_n(&count->current, __ATOMIC_RELAXED);
    return value > 0 ? (size_t)value : 0;
}

/* The same six fields as the worker's MimallocBackend: from the workbench build's statistics where it has them,
   else (Debian's build) only what mi_process_info says is committed. */
static void mimalloc_stats(struct out *o) {
    static const char *const names[] = {"elapsed_msecs", "user_msecs", "system_msecs", "current_rss",
                                        "peak_rss", "current_commit", "peak_commit", "page_faults"};
    size_t v[8] = {0};
    g_alloc.mi_process_info(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    const struct mi_stats *stats = g_alloc.mi_stats;
    if (stats == NULL) {
        out_size(o, "allocated_bytes", 0, 0);
        out_size(o, "active_bytes", 0, 0);
        out_size(o, "metadata_bytes", 0, 0);
        out_size(o, "resident_bytes", 0, 0);
        out_size(o, "mapped_bytes", 1, v[5]);
        out_size(o, "retained_bytes", 0, 0);
    }
    // mimalloc's counters move while the program's threads allocate: each is read once, and the figures and "raw"
    // are made from those reads (read twice, allocated and its parts differed by 48 B in a CI run).
    enum { MI_NORMAL, MI_LARGE, MI_HUGE, MI_MALLOC, MI_RESERVED, MI_COMMITTED, MI_RESET, MI_PAGE_COMMITTED,
           MI_SEGMENTS, MI_PAGES, MI_THREADS, MI_SEGMENTS_CACHE, MI_FIELDS };
    static const char *const field_names[MI_FIELDS] = {
        "normal_bytes", "large_bytes", "huge_bytes", "malloc_bytes", "reserved_bytes", "committed_bytes",
        "reset_bytes", "page_committed_bytes", "segments", "pages", "threads", "segments_cache",
    };
    size_t f[MI_FIELDS] = {0};
    if (stats != NULL) {
        const struct mi_stat_count *counts[MI_FIELDS] = {
            &stats->normal, &stats->large, &stats->huge, &stats->malloc, &stats->reserved, &stats->committed,
            &stats->reset, &stats->page_committed, &stats->segments, &stats->pages, &stats->threads,
            &stats->segments_cache,
        };
        for (int i = 0; i < MI_FIELDS; i++)
            f[i] = mi_current(counts[i]);
        // The live blocks at their block sizes; what its pages made available to blocks; what it has committed.
        out_size(o, "allocated_bytes", 1, f[MI_NORMAL] + f[MI_LARGE] + f[MI_HUGE]);
        out_size(o, "active_bytes", 1, f[MI_PAGE_COMMITTED]);
        out_size(o, "metadata_bytes", 0, 0);
        out_size(o, "resident_bytes", 0, 0);  // no figure of its own for it
        out_size(o, "mapped_bytes", 1, f[MI_COMMITTED]);
        out_size(o, "retained_bytes", 1, f[MI_RESERVED] > f[MI_COMMITTED] ? f[MI_RESERVED] - f[MI_COMMITTED] : 0);
    }
    int first = 1;
    out_printf(o, ", \"raw\": {");
    for (int i = 0; i < 8; i++)
        out_raw(o, &first, names[i], v[i]);
    if (stats != NULL)
        for (int i = 0; i < MI_FIELDS; i++)
            out_raw(o, &first, field_names[i], f[i]);
    out_printf(o, "}");
}

/* The write side of the malloc_info stream: into the dump file, or counting "<heap nr=" (one per arena). */
static ssize_t xml_write(void *cookie, const char *data, size_t size) {
    static const char pattern[] = "<heap nr=";
    (void)cookie;
    if (g_xml.fd >= 0)
        return write_all(g_xml.fd, data, size) == 0 ? (ssize_t)size : -1;
    for (size_t i = 0; i < size; i++) {
        // '<' occurs only at the start of the pattern, so a mismatch restarts at 0 or 1.
        if (data[i] == pattern[g_xml.matched]) {
            if (++g_xml.matched == sizeof pattern - 1) {
                g_xml.heaps++;
                g_xml.matched = 0;
            }
        } else {
            g_xml.matched = data[i] == '<';
        }
    }
    return (ssize_t)size;
}

/* A FILE for malloc_info made once, at load, with a static buffer (stdio would otherwise malloc one). */
static void open_xml_stream(void) {
    cookie_io_functions_t io = {.read = NULL, .write = xml_write, .seek = NULL, .close = NULL};
    g_xml_stream = fopencookie(NULL, "w", io);
    if (g_xml_stream != NULL && setvbuf(g_xml_stream, g_xml_buffer, _IOFBF, sizeof g_xml_buffer) != 0) {
        fclose(g_xml_stream);
        g_xml_stream = NULL;
    }
}

/* malloc_info into `fd`, or (fd < 0) the number of arenas it lists; -1 if it cannot run. */
static long glibc_malloc_info(int fd) {
    if (g_alloc.malloc_info == NULL || g_xml_stream == NULL)
        return -1;
    g_xml.fd = fd;
    g_xml.heaps = 0;
    g_xml.matched = 0;
    int failed = g_alloc.malloc_info(0, g_xml_stream) != 0;
    failed |= fflush(g_xml_stream) != 0;
    clearerr(g_xml_stream);
    g_xml.fd = -1;
    return failed ? -1 : (long)g_xml.heaps;
}

static void glibc_stats(struct out *o) {
    // mallinfo2 first: nothing the probe does afterwards can show in it.
    struct mallinfo2_fields m = g_alloc.mallinfo2();
    long arenas = glibc_malloc_info(-1);
    // In use = small chunks in arenas + mmapped chunks; obtained from the system = arenas + mmapped chunks.
    out_size(o, "allocated_bytes", 1, m.uordblks + m.hblkhd);
    out_size(o, "active_bytes", 0, 0);
    out_size(o, "metadata_bytes", 0, 0);
    out_size(o, "resident_bytes", 0, 0);
    out_size(o, "mapped_bytes", 1, m.arena + m.hblkhd);
    out_size(o, "retained_bytes", 0, 0);
    int first = 1;
    out_printf(o, ", \"raw\": {");
    out_raw(o, &first, "arena", m.arena);
    out_raw(o, &first, "ordblks", m.ordblks);
    out_raw(o, &first, "smblks", m.smblks);
    out_raw(o, &first, "hblks", m.hblks);
    out_raw(o, &first, "hblkhd", m.hblkhd);
    out_raw(o, &first, "usmblks", m.usmblks);
    out_raw(o, &first, "fsmblks", m.fsmblks);
    out_raw(o, &first, "uordblks", m.uordblks);
    out_raw(o, &first, "fordblks", m.fordblks);
    out_raw(o, &first, "keepcost", m.keepcost);
    if (arenas >= 0)
        out_raw(o, &first, "arenas", (size_t)arenas);
    out_printf(o, "}");
}

static void unknown_stats(struct out *o) {
    static const char *const fields[] = {"allocated_bytes", "active_bytes", "metadata_bytes",
                                         "resident_bytes", "mapped_bytes", "retained_bytes"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        out_size(o, fields[i], 0, 0);
    out_printf(o, ", \"raw\": {}");
}

/* The answer to "stats": one JSON object with the snapshot's fields, pid, version, library and t_ns. */
static void format_stats(struct out *o) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    out_printf(o, "{\"pid\": %ld, \"backend\": ", (long)g_pid);
    out_string(o, BACKEND_NAMES[g_alloc.kind]);
    out_printf(o, ", \"version\": ");
    out_string(o, allocator_version());
    out_printf(o, ", \"library\": ");
    out_string(o, g_alloc.library[0] != '\0' ? g_alloc.library : NULL);
    out_printf(o, ", \"t_ns\": %lld", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    switch (g_alloc.kind) {
    case BACKEND_JEMALLOC: jemalloc_stats(o); break;
    case BACKEND_TCMALLOC: tcmalloc_stats(o); break;
    case BACKEND_MIMALLOC: mimalloc_stats(o); break;
    case BACKEND_GLIBC: glibc_stats(o); break;
    default: unknown_stats(o); break;
    }
    out_printf(o, "}");
}

/* --- full statistics dumps ------------------------------------------------------------------------------------ */

/* Where a dump's text goes, and the first write that failed (errno; 0: none). */
struct sink {
    int fd;
    int error;
};

static void sink_write(struct sink *sink, const char *text) {
    if (sink->error == 0 && write_all(sink->fd, text, strlen(text)) != 0)
        sink->error = errno != 0 ? errno : EIO;
}

static void je_write(void *opaque, const char *text) {
    sink_write(opaque, text);
}

static void mi_write(const char *text, void *opaque) {
    sink_write(opaque, text);
}

/* tcmalloc fills a caller's buffer: take it from mmap, not from the allocator being measured. */
static int tcmalloc_dump(int fd) {
    char *buffer = mmap(NULL, TCMALLOC_STATS_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buffer == MAP_FAILED)
        return -1;
    buffer[0] = '\0';
    g_alloc.tc_get_stats(buffer, TCMALLOC_STATS_BYTES);
    int result = write_all(fd, buffer, strnlen(buffer, TCMALLOC_STATS_BYTES));
    munmap(buffer, TCMALLOC_STATS_BYTES);
    return result;
}

/* The file extension of this backend's dump, or NULL if it has none. */
static const char *dump_extension(void) {
    switch (g_alloc.kind) {
    case BACKEND_JEMALLOC: return g_alloc.je_stats_print ? "json" : NULL;
    case BACKEND_TCMALLOC: return g_alloc.tc_get_stats ? "txt" : NULL;
    case BACKEND_MIMALLOC: return g_alloc.mi_stats_print_out ? "txt" : NULL;
    case BACKEND_GLIBC: return g_alloc.malloc_info && g_xml_stream ? "xml" : NULL;
    default: return NULL;
    }
}

/* One dump at a time: the probe thread's and a caller's of workbench_allocator_dump share glibc's stream. */
static pthread_mutex_t g_dump_lock = PTHREAD_MUTEX_INITIALIZER;

/* The allocator's full statistics in its own format, written to `fd`; 0 or -1 (errno set). `arenas` 0 leaves out
 * jemalloc's per-arena statistics (the merged ones stay: every figure the workbench reads is in them). */
static int write_dump_of(int fd, int arenas) {
    struct sink sink = {fd, 0};
    int result = -1;
    pthread_mutex_lock(&g_dump_lock);
    switch (g_alloc.kind) {
    case BACKEND_JEMALLOC: g_alloc.je_stats_print(je_write, &sink, arenas ? "J" : "Ja"); result = 0; break;
    case BACKEND_TCMALLOC: result = tcmalloc_dump(fd); break;
    case BACKEND_MIMALLOC: g_alloc.mi_stats_print_out(mi_write, &sink); result = 0; break;
    case BACKEND_GLIBC: result = glibc_malloc_info(fd) < 0 ? -1 : 0; break;
    default: errno = ENOTSUP; break;
    }
    pthread_mutex_unlock(&g_dump_lock);
    if (sink.error != 0) {
        errno = sink.error;
        return -1;
    }
    return result;
}

static int write_dump(int fd) {
    return write_dump_of(fd, 1);
}

/* --- the library's functions for its caller (snapshot.h) --------------------------------------------------------- */

const char *workbench_allocator_backend(void) {
    return BACKEND_NAMES[g_alloc.kind];
}

const char *workbench_allocator_dump_extension(void) {
    return dump_extension();
}

int workbench_allocator_dump(int fd) {
    if (dump_extension() == NULL)
        return -ENOTSUP;
    return write_dump(fd) == 0 ? 0 : -(errno != 0 ? errno : EIO);
}

int workbench_allocator_dump_merged(int fd) {
    if (dump_extension() == NULL)
        return -ENOTSUP;
    return write_dump_of(fd, 0) == 0 ? 0 : -(errno != 0 ? errno : EIO);
}

int workbench_allocator_allocated(uint64_t *bytes) {
    if (bytes == NULL)
        return -EINVAL;
    size_t value = 0, size = sizeof value;
    uint64_t epoch = 1;
    switch (g_alloc.kind) {
    case BACKEND_JEMALLOC:
        g_alloc.mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);
        if (g_alloc.mallctl("stats.allocated", &value, &size, NULL, 0) != 0)
            return -ENOTSUP;
        break;
    case BACKEND_TCMALLOC:
        if (!g_alloc.tc_property("generic.current_allocated_bytes", &value))
            return -ENOTSUP;
        break;
    case BACKEND_GLIBC: {
        struct mallinfo2_fields m = g_alloc.mallinfo2();
        value = m.uordblks + m.hblkhd;
        break;
    }
    default: return -ENOTSUP;
    }
    *bytes = value;
    return 0;
}

/* The keys, their types and order as JemallocBackend.FIGURES has them (the timeline samples these every 100 ms:
 * fourteen mallctl calls from Python took ~290 us cold, of which the epoch itself ~170 us). */
static const struct {
    const char *key;
    char type;  /* 'z' size_t, 'u' unsigned, 's' ssize_t */
} k_jemalloc_figures[] = {
    {"stats.allocated", 'z'}, {"stats.active", 'z'}, {"stats.metadata", 'z'}, {"stats.resident", 'z'},
    {"stats.mapped", 'z'}, {"stats.retained", 'z'}, {"arenas.narenas", 'u'}, {"stats.arenas.4096.pdirty", 'z'},
    {"stats.arenas.4096.pmuzzy", 'z'}, {"stats.arenas.4096.tcache_bytes", 'z'}, {"stats.arenas.4096.base", 'z'},
    {"stats.arenas.4096.internal", 'z'}, {"opt.dirty_decay_ms", 's'},
};

/* One key read as its type; 0 or -1. */
static int jemalloc_read_as(const char *key, char type, int64_t *out) {
    size_t z = 0, size = sizeof z;
    unsigned u = 0;
    ssize_t s = 0;
    switch (type) {
    case 'u':
        size = sizeof u;
        if (g_alloc.mallctl(key, &u, &size, NULL, 0) != 0)
            return -1;
        *out = (int64_t)u;
        return 0;
    case 's':
        size = sizeof s;
        if (g_alloc.mallctl(key, &s, &size, NULL, 0) != 0)
            return -1;
        *out = (int64_t)s;
        return 0;
    default:
        if (g_alloc.mallctl(key, &z, &size, NULL, 0) != 0)
            return -1;
        *out = (int64_t)z;
        return 0;
    }
}

long long workbench_jemalloc_figures(int64_t *values, int max) {
    enum { COUNT = sizeof k_jemalloc_figures / sizeof k_jemalloc_figures[0] };
    if (values == NULL || max != COUNT)
        return -EINVAL;
    if (g_alloc.kind != BACKEND_JEMALLOC)
        return -ENOTSUP;
    uint64_t epoch = 1;
    g_alloc.mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);  // refresh the merged statistics, once
    long long known = 0;
    for (int i = 0; i < COUNT; i++)
        if (jemalloc_read_as(k_jemalloc_figures[i].key, k_jemalloc_figures[i].type, &values[i]) == 0)
            known |= 1LL << i;
    return known;
}

int workbench_allocator_flush_thread_cache(void) {
    if (g_alloc.kind != BACKEND_JEMALLOC)
        return -ENOTSUP;
    return g_alloc.mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0 ? 0 : -ENOTSUP;
}

#define JEMALLOC_ARENAS_ALL 4096  // MALLCTL_ARENAS_ALL: the arenas merged

/* `name` as a MIB of `length` components; 0 or -1. */
static int mib_of(const char *name, size_t *mib, size_t length) {
    size_t got = length;
    return g_alloc.mallctlnametomib(name, mib, &got) == 0 && got == length ? 0 : -1;
}

static int mib_read(const size_t *mib, size_t length, void *value, size_t size) {
    size_t got = size;
    return g_alloc.mallctlbymib(mib, length, value, &got, NULL, 0) == 0 && got == size ? 0 : -1;
}

int workbench_size_classes(struct wb_size_class *out, int max) {
    if (out == NULL || max < 0)
        return -EINVAL;
    if (g_alloc.kind != BACKEND_JEMALLOC || g_alloc.mallctlnametomib == NULL || g_alloc.mallctlbymib == NULL)
        return -ENOTSUP;
    uint64_t epoch = 1;
    g_alloc.mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);
    unsigned kinds[2] = {0, 0};
    size_t size = sizeof kinds[0];
    if (g_alloc.mallctl("arenas.nbins", &kinds[0], &size, NULL, 0) != 0 ||
        g_alloc.mallctl("arenas.nlextents", &kinds[1], &size, NULL, 0) != 0)
        return -ENOTSUP;
    static const char *const sizes[2] = {"arenas.bin.0.size", "arenas.lextent.0.size"};
    static const char *const counts[2] = {"stats.arenas.0.bins.0.curregs", "stats.arenas.0.lextents.0.curlextents"};
    size_t slabs_mib[6], nregs_mib[4];
    if (mib_of("stats.arenas.0.bins.0.curslabs", slabs_mib, 6) != 0 || mib_of("arenas.bin.0.nregs", nregs_mib, 4) != 0)
        return -ENOTSUP;
    slabs_mib[2] = JEMALLOC_ARENAS_ALL;
    int written = 0;
    for (int kind = 0; kind < 2; kind++) {
        size_t size_mib[4], count_mib[6];
        if (mib_of(sizes[kind], size_mib, 4) != 0 || mib_of(counts[kind], count_mib, 6) != 0)
            return -ENOTSUP;  // a jemalloc built without statistics
        count_mib[2] = JEMALLOC_ARENAS_ALL;
        for (unsigned i = 0; i < kinds[kind]; i++) {
            size_t class_size = 0, live = 0;
            size_mib[2] = count_mib[4] = i;
            if (mib_read(size_mib, 4, &class_size, sizeof class_size) != 0 ||
                mib_read(count_mib, 6, &live, sizeof live) != 0)
                return -ENOTSUP;
            if (live == 0)
                continue;
            if (written == max)
                return -E2BIG;
            size_t slabs = 0;
            uint32_t per_slab = 0;
            if (kind == 0) {
                slabs_mib[4] = nregs_mib[2] = i;
                if (mib_read(slabs_mib, 6, &slabs, sizeof slabs) != 0 ||
                    mib_read(nregs_mib, 4, &per_slab, sizeof per_slab) != 0)
                    slabs = 0, per_slab = 0;  // unknown: the class's free space is then not said
            }
            out[written++] = (struct wb_size_class){class_size, live, slabs, per_slab, (uint32_t)kind};
        }
    }
    return written;
}

/* Writes a dump to $WORKBENCH_PROBE_DUMP_DIR (complete before it appears: temporary name, then rename) or stderr. */
static int dump(char *where, size_t size) {
    const char *extension = dump_extension();
    if (extension == NULL) {
        errno = ENOTSUP;
        return -1;
    }
    if (g_dump_dir[0] == '\0') {
        snprintf(where, size, "stderr");
        return write_dump(STDERR_FILENO);
    }
    char temporary[PATH_MAX];
    unsigned n = ++g_dumps;
    int a = snprintf(where, size, "%s/" WORKBENCH_PROBE_DUMP_PREFIX "%ld-%u.%s", g_dump_dir, (long)g_pid, n, extension);
    int b = snprintf(temporary, sizeof temporary, "%s/.%ld-%u.tmp", g_dump_dir, (long)g_pid, n);
    if (a < 0 || (size_t)a >= size || b < 0 || (size_t)b >= sizeof temporary) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int failed = write_dump(fd) != 0;
    failed |= close(fd) != 0;
    if (failed || rename(temporary, where) != 0) {
        int saved = errno;
        unlink(temporary);
        errno = saved;
        return -1;
    }
    return 0;
}

/* --- the socket and the probe thread ------------------------------------------------------------------------ */

/* The answer to one command line, in g_reply (newline-terminated). */
static size_t answer(const char *command) {
    struct out o = {g_reply, sizeof g_reply - 1, 0};
    if (strcmp(command, "stats") == 0) {
        format_stats(&o);
    } else if (strcmp(command, "ping") == 0) {
        out_printf(&o, "{\"pid\": %ld}", (long)g_pid);
    } else if (strcmp(command, "dump") == 0) {
        char where[PATH_MAX];
        if (dump(where, sizeof where) == 0) {
            out_printf(&o, "{\"dump\": ");
            out_string(&o, where);
            out_printf(&o, "}");
        } else {
            out_printf(&o, "{\"error\": \"dump failed: %m\"}");
        }
    } else {
        out_printf(&o, "{\"error\": \"unknown command\"}");
    }
    if (o.length >= o.size)  // did not fit: say so rather than send broken JSON
        o.length = snprintf(g_reply, sizeof g_reply, "{\"error\": \"answer too long\"}");
    g_reply[o.length++] = '\n';
    return o.length;
}

/* Only the user the probe runs as may talk to it. */
static int peer_is_same_user(int fd) {
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0 && credentials.uid == geteuid();
}

/* One command line from the client (up to a newline or its end of stream), without "\r\n"; 0 or -1. */
static int read_command(int fd, char *line, size_t size) {
    struct timeval timeout = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    size_t length = workbench_receive_line(fd, line, size);
    line[strcspn(line, "\r\n")] = '\0';
    return length > 0 ? 0 : -1;
}

static void serve_connection(void) {
    int fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    char command[COMMAND_MAX];
    if (peer_is_same_user(fd) && read_command(fd, command, sizeof command) == 0) {
        size_t length = answer(command);
        for (size_t sent = 0; sent < length;) {
            ssize_t n = send(fd, g_reply + sent, length - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            sent += n;
        }
    }
    close(fd);
}

/* The signal asked for a dump: drain the pipe, then dump once. */
static void dump_on_signal(void) {
    char bytes[64];
    while (read(g_pipe[0], bytes, sizeof bytes) > 0)
        continue;
    char where[PATH_MAX];
    if (dump(where, sizeof where) != 0)
        warn("allocator dump on signal failed: %m");
}

static void *probe_thread(void *unused) {
    (void)unused;
    for (;;) {
        struct pollfd fds[2] = {{g_listen_fd, POLLIN, 0}, {g_pipe[0], POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            warn("poll failed, the probe stops answering: %m");
            return NULL;
        }
        if (((fds[0].revents | fds[1].revents) & (POLLNVAL | POLLERR | POLLHUP)) != 0) {
            warn("the host closed the probe's file descriptors; the probe stops answering");
            return NULL;  // rather than spin on them
        }
        if (fds[1].revents & POLLIN)
            dump_on_signal();
        if (fds[0].revents & POLLIN)
            serve_connection();
    }
}

/* The socket directory exists (made 0700 if missing), is no symlink, is ours and closed to others; 0 or -1. */
static int check_directory(const char *dir) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        warn("cannot create %s (%m); the probe is disabled", dir);
        return -1;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        warn("cannot stat %s (%m); the probe is disabled", dir);
        return -1;
    }
    const char *problem = S_ISLNK(st.st_mode)          ? "is a symlink"
                          : !S_ISDIR(st.st_mode)       ? "is not a directory"
                          : st.st_uid != geteuid()     ? "is not owned by this user"
                          : (st.st_mode & 0077) != 0   ? "is accessible to group or others (want mode 0700)"
                                                       : NULL;
    if (problem != NULL) {
        warn("refusing socket directory %s: it %s; the probe is disabled", dir, problem);
        return -1;
    }
    return 0;
}

/* Binds and listens at <dir>/probe-<pid>.sock, mode 0600; the listening fd or -1. */
static int open_socket(const char *dir) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int n = snprintf(address.sun_path, sizeof address.sun_path, WORKBENCH_PROBE_SOCKET_FORMAT, dir, (long)g_pid);
    if (n < 0 || (size_t)n >= sizeof address.sun_path) {
        warn("socket path in %s is too long for a Unix socket; the probe is disabled", dir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        warn("socket: %m; the probe is disabled");
        return -1;
    }
    unlink(address.sun_path);  // left by an earlier process with this pid
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || chmod(address.sun_path, 0600) != 0 ||
        listen(fd, 8) != 0) {
        warn("cannot serve %s: %m; the probe is disabled", address.sun_path);
        unlink(address.sun_path);
        close(fd);
        return -1;
    }
    memcpy(g_socket_path, address.sun_path, sizeof g_socket_path);
    return fd;
}

/* The probe thread, with every signal blocked in it (the host's signals go to the host's threads); 0 or -1. */
static int start_thread(void) {
    sigset_t all, previous;
    pthread_attr_t attributes;
    pthread_t thread;
    sigfillset(&all);
    if (pthread_attr_init(&attributes) != 0)
        return -1;
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, PROBE_STACK_BYTES);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    int error = pthread_create(&thread, &attributes, probe_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attributes);
    if (error != 0) {
        errno = error;
        return -1;
    }
    pthread_setname_np(thread, "workbench-probe");
    return 0;
}

/* --- the dump signal ------------------------------------------------------------------------------------------ */

/* Async-signal-safe: one byte into the self-pipe, errno preserved. */
static void on_dump_signal(int signal_number) {
    (void)signal_number;
    int saved = errno;
    char byte = 'd';
    ssize_t n = write(g_pipe[1], &byte, 1);
    (void)n;
    errno = saved;
}

/* WORKBENCH_PROBE_SIGNAL: a name (USR1, SIGUSR1, ...) or a number; 0 for "none"; -1 if not understood. */
static int parse_signal(const char *text) {
    static const struct {
        const char *name;
        int number;
    } names[] = {{"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                 {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
                 {"URG", SIGURG}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR}, {"PROF", SIGPROF}, {"VTALRM", SIGVTALRM}};
    if (text == NULL || *text == '\0')
        return SIGUSR1;
    if (strcasecmp(text, "none") == 0)
        return 0;
    char *end;
    long number = strtol(text, &end, 10);
    if (end != text && *end == '\0')
        return number > 0 && number < NSIG && number != SIGKILL && number != SIGSTOP ? (int)number : -1;
    if (strncasecmp(text, "SIG", 3) == 0)
        text += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(text, names[i].name) == 0)
            return names[i].number;
    return -1;
}

/* Installs the dump handler unless the host already handles that signal; 0, or -1 (with one line said). */
static int install_signal(const char *setting) {
    int number = parse_signal(setting);
    if (number == 0)
        return 0;
    if (number < 0) {
        warn("WORKBENCH_PROBE_SIGNAL=%s is not a signal name or number; no dump signal", setting);
        return -1;
    }
    struct sigaction previous, action;
    if (sigaction(number, NULL, &previous) != 0)
        return -1;
    if ((previous.sa_flags & SA_SIGINFO) != 0 ||
        (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)) {
        warn("signal %d already has a handler; leaving it (the socket's dump command still works)", number);
        return -1;
    }
    memset(&action, 0, sizeof action);
    action.sa_handler = on_dump_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(number, &action, NULL);
}

/* --- load and unload -------------------------------------------------------------------------------------------- */

static void copy_env(char *to, size_t size, const char *name) {
    const char *value = getenv(name);
    int n = snprintf(to, size, "%s", value != NULL ? value : "");
    if (n < 0 || (size_t)n >= size)
        to[0] = '\0';
}

/* Cheap: finds the allocator, opens the socket, starts one thread, installs the signal; never fails the host. */
__attribute__((constructor)) static void probe_load(void) {
    char dir[PATH_MAX];
    g_pid = getpid();
    copy_env(g_dump_dir, sizeof g_dump_dir, "WORKBENCH_PROBE_DUMP_DIR");
    detect_allocator();
    if (g_alloc.kind == BACKEND_GLIBC)
        open_xml_stream();
    const char *serve = getenv("WORKBENCH_PROBE_SERVE");
    if (serve != NULL && strcmp(serve, "0") == 0)
        return;  // a library for its caller only (snapshot.h)
    if (workbench_probe_dir(dir, sizeof dir) != 0) {
        warn("socket directory path too long; the probe is disabled");
        return;
    }
    if (check_directory(dir) != 0 || (g_listen_fd = open_socket(dir)) < 0)
        return;
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0 || start_thread() != 0) {
        warn("cannot start the probe thread: %m; the probe is disabled");
        unlink(g_socket_path);
        close(g_listen_fd);
        g_listen_fd = -1;
        return;
    }
    g_serving = 1;
    install_signal(getenv("WORKBENCH_PROBE_SIGNAL"));
}

/* Removes the socket, unless this is a forked child (the socket is its parent's). */
__attribute__((destructor)) static void probe_unload(void) {
    if (g_serving && getpid() == g_pid)
        unlink(g_socket_path);
}
