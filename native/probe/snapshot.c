/*
 * The snapshot reader (snapshot.h): the kernel's view of a process per mapping, the threads' stack pointers and
 * pymalloc's pools, read the cheapest way the kernel offers and parsed here rather than in Python.
 *
 * Rules as for the probe (probe.c): never abort; every failure is a return code; nothing goes through malloc. All
 * buffers live in one region mapped on first use and kept ("[anon:workbench-snapshot]" where the kernel names
 * anonymous mappings), so a read leaves no garbage behind and its own memory is known by address.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snapshot.h"

/* PAGEMAP_SCAN (Linux 6.7, include/uapi/linux/fs.h); defined here for older headers. */
struct wb_page_region {
    uint64_t start, end, categories;
};
struct wb_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define WB_PAGEMAP_SCAN _IOWR('f', 16, struct wb_pm_scan_arg)
#define WB_PAGE_IS_FILE (1u << 2)
#define WB_PAGE_IS_PRESENT (1u << 3)
#define WB_PAGE_IS_PFNZERO (1u << 5)
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

#define CHUNK_BYTES (64 * 1024)
#define SCAN_REGIONS 1024
#define TEXT_BYTES (16 * 1024)
#define POOL_BYTES (8u << 20)
#define USER_SPACE_END (1ULL << 56)  // above every user address (5-level paging included), below [vsyscall]

/* A mapping as the last read found it: enough to tell that it is unchanged (its line by a hash). */
struct seen {
    uint64_t start, end, rss_bytes, anon_bytes, line_hash;
};

struct region {
    char chunk[CHUNK_BYTES];  // what is read, and the raw text formatted
    char text[TEXT_BYTES];    // directory entries, pymalloc's statistics
    struct wb_page_region scan[SCAN_REGIONS];
    struct wb_mapping mappings[WB_MAPPINGS_MAX];
    struct seen latest[WB_MAPPINGS_MAX];  // what the last read that succeeded found, to tell what changed since
    uint64_t hashes[WB_MAPPINGS_MAX];     // this read's line hashes, until they replace latest's
    char pool[POOL_BYTES];  // the mappings' lines
};

static struct region *g_region;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_no_pagemap_scan;  // the kernel answered ENOTTY/EINVAL once: smaps from then on
static struct {
    int pid;
    uint32_t mappings;
    uint32_t generation;  // 0: no read has succeeded yet
} g_latest;  // the last read that succeeded

/* The region, mapped on first use; NULL (errno set) if it cannot be. Pages are touched only as they are used. */
static struct region *region(void) {
    if (g_region != NULL)
        return g_region;
    void *address = mmap(NULL, sizeof(struct region), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (address == MAP_FAILED)
        return NULL;
    // A name for pmap and smaps readers; kernels without CONFIG_ANON_VMA_NAME leave it unnamed.
    prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)address, sizeof(struct region), "workbench-snapshot");
    g_region = address;
    // The fixed buffers every read uses, made resident now: the first read counts them, and no later one grows.
    memset(g_region->chunk, 0, sizeof g_region->chunk);
    memset(g_region->text, 0, sizeof g_region->text);
    memset(g_region->scan, 0, sizeof g_region->scan);
    return g_region;
}

static int write_fully(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        data += n;
        size -= n;
    }
    return 0;
}

static int open_proc(int pid, const char *file) {
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    else
        snprintf(path, sizeof path, "/proc/self/%s", file);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* --- reading a file line by line ------------------------------------------------------------------------------ */

struct reading {
    struct region *r;
    struct wb_mapping *mappings;
    char *pool;
    struct wb_process *out;
    uint32_t used;  // bytes of the pool in use
    int raw_fd;
    int with_fields;  // smaps: Rss and Anonymous lines follow each mapping's line
    int maps_read;    // the mappings' lines were read whole (what failed, if anything, came after)
    uint64_t own_start, own_end;  // the region, when reading this process: its pages are counted apart too
};

static void raw_write(struct reading *reading, const char *data, size_t size) {
    if (reading->raw_fd >= 0 && reading->out->raw_errno == 0)
        reading->out->raw_errno = write_fully(reading->raw_fd, data, size);
}

static const char *skip_field(const char *p, const char *end) {
    while (p < end && *p != ' ')
        p++;
    while (p < end && *p == ' ')
        p++;
    return p;
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static uint64_t parse_hex(const char **p, const char *end) {
    uint64_t value = 0;
    int digit;
    while (*p < end && (digit = hex_digit(**p)) >= 0) {
        value = value << 4 | (uint64_t)digit;
        (*p)++;
    }
    return value;
}

/* "start-end perms offset dev inode   name": a new mapping, its line kept in the pool; 0 or -errno. */
static int mapping_line(struct reading *reading, const char *line, size_t length) {
    struct wb_process *out = reading->out;
    if (out->mappings >= WB_MAPPINGS_MAX || length > POOL_BYTES - reading->used)
        return -E2BIG;
    const char *end = line + length, *p = line;
    struct wb_mapping *m = &reading->mappings[out->mappings];
    m->start = parse_hex(&p, end);
    if (p >= end || *p++ != '-')
        return -EPROTO;
    m->end = parse_hex(&p, end);
    if (end - p < 6 || *p++ != ' ')
        return -EPROTO;
    memcpy(m->perms, p, 4);
    p = skip_field(p, end);  // perms
    p = skip_field(p, end);  // offset
    p = skip_field(p, end);  // device
    p = skip_field(p, end);  // inode, and the padding before the name
    const char *name_end = end;
    while (name_end > p && name_end[-1] == ' ')
        name_end--;
    memcpy(reading->pool + reading->used, line, length);
    m->line_offset = reading->used;
    m->line_length = (uint32_t)length;
    m->name_offset = reading->used + (uint32_t)(p - line);
    m->name_length = (uint32_t)(name_end - p);
    m->rss_bytes = m->anon_bytes = 0;
    m->previous = -1;
    reading->used += (uint32_t)length;
    out->mappings++;
    return 0;
}

/* "Rss:   1234 kB" -> 1234 * 1024 when the line starts with `key`. */
static int field_bytes(const char *line, size_t length, const char *key, uint64_t *bytes) {
    size_t key_length = strlen(key);
    if (length <= key_length || memcmp(line, key, key_length) != 0)
        return 0;
    uint64_t value = 0;
    for (size_t i = key_length; i < length && line[i] != 'k'; i++)
        if (line[i] >= '0' && line[i] <= '9')
            value = value * 10 + (uint64_t)(line[i] - '0');
    *bytes = value * 1024;
    return 1;
}

static int one_line(struct reading *reading, const char *line, size_t length) {
    if (length > 0 && hex_digit(line[0]) >= 0)  // field lines start with a capital letter
        return mapping_line(reading, line, length);
    if (!reading->with_fields || reading->out->mappings == 0)
        return 0;
    struct wb_mapping *m = &reading->mappings[reading->out->mappings - 1];
    if (!field_bytes(line, length, "Rss:", &m->rss_bytes))
        field_bytes(line, length, "Anonymous:", &m->anon_bytes);
    return 0;
}

/* Every line of `fd` (smaps' are copied to the raw file as read); 0 or -errno. */
static int read_lines(struct reading *reading, int fd, int copy_raw) {
    char *chunk = reading->r->chunk;
    size_t kept = 0;
    for (;;) {
        ssize_t n = read(fd, chunk + kept, CHUNK_BYTES - kept);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        if (copy_raw)
            raw_write(reading, chunk + kept, (size_t)n);
        size_t filled = kept + (size_t)n, begin = 0;
        const char *newline;
        while ((newline = memchr(chunk + begin, '\n', filled - begin)) != NULL) {
            int error = one_line(reading, chunk + begin, (size_t)(newline - (chunk + begin)));
            if (error != 0)
                return error;
            begin = (size_t)(newline - chunk) + 1;
        }
        kept = filled - begin;
        if (kept == CHUNK_BYTES)
            return -EOVERFLOW;  // one line longer than the chunk: not a maps file
        memmove(chunk, chunk + begin, kept);
    }
    return kept > 0 ? one_line(reading, chunk, kept) : 0;
}

/* --- PAGEMAP_SCAN: the present pages, each range with its categories ----------------------------------------- */

/* What a mapping's present pages can be, as far as its line tells. */
enum pages {
    PAGES_ANONYMOUS,  // a private anonymous mapping: every present page is anonymous (the zero page aside)
    PAGES_SHARED,     // a shared mapping (a file's, "/dev/zero (deleted)", "/SYSV...", "/memfd:..."): none is
    PAGES_MIXED,      // a file's private mapping (its private copies are anonymous), or the kernel's ([vdso])
};

static enum pages pages_of(const struct reading *reading, const struct wb_mapping *m) {
    const char *name = reading->pool + m->name_offset;
    if (m->perms[3] == 's')
        return PAGES_SHARED;
    if (m->name_length == 0)
        return PAGES_ANONYMOUS;
    if (name[0] != '[')
        return PAGES_MIXED;
    static const char *const anonymous[] = {"[heap]", "[stack", "[anon:"};  // "[stack:TID]" on old kernels
    for (size_t i = 0; i < sizeof anonymous / sizeof anonymous[0]; i++)
        if (m->name_length >= strlen(anonymous[i]) && memcmp(name, anonymous[i], strlen(anonymous[i])) == 0)
            return PAGES_ANONYMOUS;
    return PAGES_MIXED;
}

/* Adds a range of present pages to the mappings it overlaps, from *first on (both are in address order): in the
 * first pass (`file_pass` 0, which asks the kernel nothing about files) to the anonymous and the shared mappings,
 * in the second (which does) to the mixed ones. */
static void count_range(struct reading *reading, uint32_t *first, const struct wb_page_region *range, int file_pass) {
    struct wb_mapping *mappings = reading->mappings;
    uint32_t count = reading->out->mappings;
    while (*first < count && mappings[*first].end <= range->start)
        (*first)++;
    if (range->categories & WB_PAGE_IS_PFNZERO)
        return;  // the shared zero page: smaps counts it nowhere
    int anonymous = !(range->categories & WB_PAGE_IS_FILE);
    if (!file_pass && reading->own_start < reading->own_end) {  // the region is a private anonymous mapping
        uint64_t low = range->start > reading->own_start ? range->start : reading->own_start;
        uint64_t high = range->end < reading->own_end ? range->end : reading->own_end;
        if (high > low)
            reading->out->buffers_anon_bytes += high - low;
    }
    for (uint32_t i = *first; i < count && mappings[i].start < range->end; i++) {
        uint64_t low = range->start > mappings[i].start ? range->start : mappings[i].start;
        uint64_t high = range->end < mappings[i].end ? range->end : mappings[i].end;
        enum pages pages = pages_of(reading, &mappings[i]);
        if (high <= low || (pages == PAGES_MIXED) != file_pass)
            continue;
        mappings[i].rss_bytes += high - low;
        if (pages == PAGES_ANONYMOUS || (pages == PAGES_MIXED && anonymous))
            mappings[i].anon_bytes += high - low;
    }
}

/* The present pages in [low, high), counted into the mappings; 0 or -errno. */
static int scan_range(struct reading *reading, int fd, uint64_t low, uint64_t high, int file_pass) {
    uint32_t first = 0;
    // A call can answer ranges up to `high` with fewer than vec_len of them and yet a walk_end below its last ones
    // (measured under the built mimalloc, whose segments give ~1,000 ranges: 1,004 ranges to the end, walk_end in
    // the middle), so the next call reports them again: each page is counted once, up to `counted` (the mappings
    // were safe by `first`, the region's own pages were not: 2 x 176,128 B in about half the reads).
    uint64_t counted = low;
    while (low < high) {
        struct wb_pm_scan_arg arg = {
            .size = sizeof arg, .start = low, .end = high, .vec = (uint64_t)(uintptr_t)reading->r->scan,
            .vec_len = SCAN_REGIONS, .category_anyof_mask = WB_PAGE_IS_PRESENT,
            // Asking about files makes the kernel look at every page's struct page: ~4x the cost of a page.
            .return_mask = WB_PAGE_IS_PRESENT | WB_PAGE_IS_PFNZERO | (file_pass ? WB_PAGE_IS_FILE : 0),
        };
        long found = ioctl(fd, WB_PAGEMAP_SCAN, &arg);
        if (found < 0 && errno == EINTR)
            continue;
        if (found < 0)
            return -errno;
        for (long i = 0; i < found; i++) {
            struct wb_page_region *range = &reading->r->scan[i];
            if (range->end <= counted)
                continue;
            if (range->start < counted)
                range->start = counted;
            counted = range->end;
            count_range(reading, &first, range, file_pass);
        }
        // Fewer ranges than the vector holds: the walk went to the end, whatever walk_end says (as glibc_chunks.py
        // takes it); going on would walk the rest again for nothing.
        if (found < SCAN_REGIONS || arg.walk_end <= low)
            break;
        low = arg.walk_end;  // the vector was full: go on from where the walk stopped
    }
    return 0;
}

/* Rss and Anonymous of every mapping: one scan of the whole address space for presence only, then one per run of
 * consecutive mixed mappings, asking which pages are the file's (the part that costs: the kernel looks at each
 * page's struct page there). */
/* Makes resident the pages of what this read writes after its scan (match_latest), so that the scan counts them. */
static void touch_after_scan_pages(struct region *r, uint32_t count) {
    volatile char *hashes = (volatile char *)r->hashes, *latest = (volatile char *)r->latest;
    for (size_t at = 0; at < count * sizeof r->hashes[0]; at += 4096)
        hashes[at] = 0;
    for (size_t at = 0; at < count * sizeof r->latest[0]; at += 4096)
        latest[at] = latest[at];
}

static int scan_pages(struct reading *reading, int pid) {
    const struct wb_mapping *mappings = reading->mappings;
    uint32_t count = reading->out->mappings;
    touch_after_scan_pages(reading->r, count);
    while (count > 0 && mappings[count - 1].end > USER_SPACE_END)
        count--;  // [vsyscall]: not a user address, and smaps counts nothing there
    if (count == 0)
        return 0;
    int fd = open_proc(pid, "pagemap");
    if (fd < 0)
        return -errno;
    int error = scan_range(reading, fd, mappings[0].start, mappings[count - 1].end, 0);
    for (uint32_t i = 0; i < count && error == 0;) {
        if (pages_of(reading, &mappings[i]) != PAGES_MIXED) {
            i++;
            continue;
        }
        uint32_t last = i;
        while (last + 1 < count && pages_of(reading, &mappings[last + 1]) == PAGES_MIXED)
            last++;
        error = scan_range(reading, fd, mappings[i].start, mappings[last].end, 1);
        i = last + 1;
    }
    close(fd);
    return error;
}

/* Each mapping's line with its Rss and Anonymous, as smaps prints them (only these two fields). */
static void write_scanned_raw(struct reading *reading) {
    static const char header[] = "# workbench: /proc/PID/maps with each mapping's Rss and Anonymous from "
                                 "PAGEMAP_SCAN (/proc/PID/pagemap); smaps prints the same fields\n";
    char *chunk = reading->r->chunk;
    size_t used = sizeof header - 1;
    memcpy(chunk, header, used);
    for (uint32_t i = 0; i < reading->out->mappings; i++) {
        const struct wb_mapping *m = &reading->mappings[i];
        if (CHUNK_BYTES - used < m->line_length + 96) {
            raw_write(reading, chunk, used);
            used = 0;
        }
        memcpy(chunk + used, reading->pool + m->line_offset, m->line_length);
        used += m->line_length;
        used += (size_t)snprintf(chunk + used, CHUNK_BYTES - used, "\nRss: %8llu kB\nAnonymous: %8llu kB\n",
                                 (unsigned long long)(m->rss_bytes / 1024), (unsigned long long)(m->anon_bytes / 1024));
    }
    raw_write(reading, chunk, used);
}

/* The region's resident pages (all anonymous, all written before read), for a read that did not scan them. */
static uint64_t own_resident_bytes(struct region *r) {
    static unsigned char pages[(sizeof(struct region) + 4095) / 4096];
    long page = sysconf(_SC_PAGESIZE);
    if (page != 4096 || mincore(r, sizeof(struct region), pages) != 0)
        return 0;
    uint64_t resident = 0;
    for (size_t i = 0; i < sizeof pages; i++)
        resident += (pages[i] & 1) ? 4096 : 0;
    return resident;
}

static int read_with(struct reading *reading, int pid, int mode) {
    reading->out->buffers_anon_bytes = 0;
    reading->out->mappings = 0;
    reading->used = 0;
    reading->out->raw_errno = 0;
    reading->with_fields = mode == WB_MODE_SMAPS;
    int fd = open_proc(pid, mode == WB_MODE_SMAPS ? "smaps" : "maps");
    if (fd < 0)
        return -errno;
    int error = read_lines(reading, fd, mode == WB_MODE_SMAPS);
    close(fd);
    reading->maps_read = error == 0;
    if (error == 0 && mode == WB_MODE_PAGEMAP_SCAN && (error = scan_pages(reading, pid)) == 0)
        write_scanned_raw(reading);
    reading->out->source = mode;
    return error;
}

static uint64_t line_hash(const char *line, uint32_t length) {
    uint64_t hash = 14695981039346656037ULL;  // FNV-1a
    for (uint32_t i = 0; i < length; i++)
        hash = (hash ^ (unsigned char)line[i]) * 1099511628211ULL;
    return hash;
}

/* Points each mapping at the same mapping of the last read of this process when nothing of it changed (its line,
 * Rss and Anonymous), so the caller can keep what it made of it, then remembers this read; the generation those
 * indices refer to, or 0. */
static uint32_t match_latest(struct region *r, int pid, uint32_t count) {
    uint32_t generation = g_latest.generation != 0 && g_latest.pid == pid ? g_latest.generation : 0;
    uint32_t j = 0, before = generation != 0 ? g_latest.mappings : 0;
    for (uint32_t i = 0; i < count; i++) {
        struct wb_mapping *m = &r->mappings[i];
        uint64_t hash = line_hash(r->pool + m->line_offset, m->line_length);
        while (j < before && r->latest[j].start < m->start)
            j++;
        const struct seen *old = &r->latest[j];
        if (j < before && old->start == m->start && old->end == m->end && old->rss_bytes == m->rss_bytes &&
            old->anon_bytes == m->anon_bytes && old->line_hash == hash)
            m->previous = (int32_t)j;
        r->hashes[i] = hash;
    }
    for (uint32_t i = 0; i < count; i++) {  // after matching: `latest` is read up to the end above
        const struct wb_mapping *m = &r->mappings[i];
        r->latest[i] = (struct seen){m->start, m->end, m->rss_bytes, m->anon_bytes, r->hashes[i]};
    }
    g_latest.pid = pid;
    g_latest.mappings = count;
    g_latest.generation++;
    return generation;
}

int workbench_read_process(int pid, int raw_fd, int mode, struct wb_process *out) {
    if (out == NULL || mode < WB_MODE_AUTO || mode > WB_MODE_SMAPS)
        return -EINVAL;
    pthread_mutex_lock(&g_lock);
    struct region *r = region();
    int error = r == NULL ? -errno : 0;
    if (error == 0) {
        struct reading reading = {.r = r, .mappings = r->mappings, .pool = r->pool, .out = out, .raw_fd = raw_fd};
        if (pid <= 0) {
            reading.own_start = (uint64_t)(uintptr_t)r;
            reading.own_end = reading.own_start + sizeof(struct region);
        }
        int scan = mode == WB_MODE_PAGEMAP_SCAN || (mode == WB_MODE_AUTO && !g_no_pagemap_scan);
        error = read_with(&reading, pid, scan ? WB_MODE_PAGEMAP_SCAN : WB_MODE_SMAPS);
        if (scan && mode == WB_MODE_AUTO && error != 0 && reading.maps_read) {
            // PAGEMAP_SCAN refused (ENOTTY, EINVAL: a kernel before 6.7); nothing was written to raw_fd yet.
            g_no_pagemap_scan = error == -ENOTTY || error == -EINVAL;
            error = read_with(&reading, pid, WB_MODE_SMAPS);
        }
    }
    if (error == 0) {
        uint64_t start = (uint64_t)(uintptr_t)r, end = start + sizeof(struct region);
        out->rss_bytes = out->anon_rss_bytes = 0;
        for (uint32_t i = 0; i < out->mappings; i++) {
            out->rss_bytes += r->mappings[i].rss_bytes;
            out->anon_rss_bytes += r->mappings[i].anon_bytes;
        }
        if (pid <= 0 && out->source == WB_MODE_SMAPS)
            out->buffers_anon_bytes = own_resident_bytes(r);
        out->buffers_start = pid <= 0 ? start : 0;
        out->buffers_end = pid <= 0 ? end : 0;
        out->previous_generation = match_latest(r, pid, out->mappings);
        out->generation = g_latest.generation;
    }
    pthread_mutex_unlock(&g_lock);
    return error;
}

const struct wb_mapping *workbench_snapshot_mappings(void) {
    return g_region != NULL ? g_region->mappings : NULL;
}

const char *workbench_snapshot_pool(void) {
    return g_region != NULL ? g_region->pool : NULL;
}

/* --- the threads' stack pointers -------------------------------------------------------------------------------- */

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* The stack pointer in a task's "syscall" file: "nr a1 .. a6 sp pc" (in a call), "-1 sp pc" (blocked otherwise). */
static int stack_pointer(int task_fd, const char *tid, uint64_t *sp) {
    char path[64], text[256];
    snprintf(path, sizeof path, "%s/syscall", tid);
    int fd = openat(task_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;  // the thread ended meanwhile
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    char *fields[9];
    int count = 0;
    for (char *save = NULL, *field = strtok_r(text, " \n", &save); field != NULL && count < 9;
         field = strtok_r(NULL, " \n", &save))
        fields[count++] = field;
    if (count >= 9) {
        *sp = strtoull(fields[7], NULL, 16);
        return 1;
    }
    if (count == 3 && strcmp(fields[0], "-1") == 0) {
        *sp = strtoull(fields[1], NULL, 16);
        return 1;
    }
    return 0;  // "running"
}

int workbench_stack_pointers(int pid, uint64_t *pointers, int max, int *threads) {
    if (pointers == NULL || threads == NULL || max < 0)
        return -EINVAL;
    pthread_mutex_lock(&g_lock);
    struct region *r = region();
    int task_fd = r == NULL ? -1 : open_proc(pid, "task");
    int error = task_fd < 0 ? -errno : 0, count = 0;
    *threads = 0;
    while (error == 0) {
        long n = syscall(SYS_getdents64, task_fd, r->text, sizeof r->text);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error = n < 0 ? -errno : 0;
            break;
        }
        for (long at = 0; at < n;) {
            struct linux_dirent64 *entry = (struct linux_dirent64 *)(r->text + at);
            at += entry->d_reclen;
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
                continue;
            (*threads)++;
            uint64_t sp;
            if (count < max && stack_pointer(task_fd, entry->d_name, &sp))
                pointers[count++] = sp;
        }
    }
    if (task_fd >= 0)
        close(task_fd);
    pthread_mutex_unlock(&g_lock);
    for (int i = 1; i < count; i++)  // a few hundred at most: insertion sort
        for (int j = i; j > 0 && pointers[j - 1] > pointers[j]; j--) {
            uint64_t swap = pointers[j];
            pointers[j] = pointers[j - 1];
            pointers[j - 1] = swap;
        }
    return error != 0 ? error : count;
}

/* --- pymalloc's pools ------------------------------------------------------------------------------------------ */

static FILE *g_stats_stream;
static char g_stats_buffer[4096];
static size_t g_stats_length;

static ssize_t stats_write(void *cookie, const char *data, size_t size) {
    (void)cookie;
    size_t room = TEXT_BYTES - 1 - g_stats_length;
    size_t n = size < room ? size : room;  // the four lines come early; a longer text is cut, not failed
    memcpy(g_region->text + g_stats_length, data, n);
    g_stats_length += n;
    return (ssize_t)size;
}

/* "# bytes in allocated blocks        =        12,345,678" -> 12345678 when the line is `label`; else -1. */
static long long labelled_bytes(const char *text, const char *label) {
    const char *at = strstr(text, label);
    if (at == NULL || (at = strchr(at, '=')) == NULL)
        return -1;
    long long value = 0;
    int digits = 0;
    for (at++; *at != '\0' && *at != '\n'; at++) {
        if (*at >= '0' && *at <= '9') {
            value = value * 10 + (*at - '0');
            digits++;
        }
    }
    return digits > 0 ? value : -1;
}

long long workbench_pymalloc_pools(int (*stats)(void *stream)) {
    static const char *const labels[] = {"# bytes in allocated blocks", "# bytes in available blocks",
                                         "# bytes lost to pool headers", "# bytes lost to quantization"};
    if (stats == NULL)
        return -1;
    pthread_mutex_lock(&g_lock);
    long long total = -1;
    if (region() != NULL && g_stats_stream == NULL) {
        // Made once: fopencookie allocates its FILE the first time only, and the buffer is ours.
        cookie_io_functions_t io = {.read = NULL, .write = stats_write, .seek = NULL, .close = NULL};
        g_stats_stream = fopencookie(NULL, "w", io);
        if (g_stats_stream != NULL && setvbuf(g_stats_stream, g_stats_buffer, _IOFBF, sizeof g_stats_buffer) != 0) {
            fclose(g_stats_stream);
            g_stats_stream = NULL;
        }
    }
    if (g_stats_stream != NULL) {
        g_stats_length = 0;
        stats(g_stats_stream);
        fflush(g_stats_stream);
        clearerr(g_stats_stream);
        g_region->text[g_stats_length] = '\0';
        total = 0;
        for (size_t i = 0; i < sizeof labels / sizeof labels[0] && total >= 0; i++) {
            long long value = labelled_bytes(g_region->text, labels[i]);
            total = value < 0 ? -1 : total + value;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return total;
}
