/*
 * The snapshot reader of libworkbench-probe.so (snapshot.c): what a snapshot reads from the kernel and from the
 * interpreter, parsed in C into one region mapped once ("[anon:workbench-snapshot]"), never through malloc.
 * The layouts below are mirrored by workbench/probes/native_probe.py (ctypes); change both together.
 */
#ifndef WORKBENCH_SNAPSHOT_H
#define WORKBENCH_SNAPSHOT_H

#include <stdint.h>

/* How workbench_read_process finds each mapping's Rss and Anonymous. */
#define WB_MODE_AUTO 0          /* PAGEMAP_SCAN where the kernel has it (Linux 6.7+), else smaps */
#define WB_MODE_PAGEMAP_SCAN 1  /* /proc/PID/maps, then one PAGEMAP_SCAN ioctl on /proc/PID/pagemap */
#define WB_MODE_SMAPS 2         /* /proc/PID/smaps, parsed line by line */

/* The most mappings one read holds (the kernel's default vm.max_map_count is 65530). */
#define WB_MAPPINGS_MAX 65536

/* One mapping; offsets are into workbench_snapshot_pool(). */
struct wb_mapping {
    uint64_t start, end;
    uint64_t rss_bytes;   /* smaps' Rss: pages mapped, the zero page left out */
    uint64_t anon_bytes;  /* smaps' Anonymous: of those, anonymous pages (private copies included) */
    uint32_t line_offset, line_length;  /* the mapping's line as /proc/PID/maps prints it */
    uint32_t name_offset, name_length;  /* its name: a path, [heap], [stack], [anon:...], or empty */
    char perms[4];
    int32_t previous;  /* the index of the same mapping, unchanged (line and figures), in the previous read; -1 */
};

struct wb_process {
    uint64_t rss_bytes, anon_rss_bytes;  /* summed over the mappings */
    uint64_t buffers_start, buffers_end;  /* the reader's own region, by address */
    uint64_t buffers_anon_bytes;          /* its Anonymous, from the same read */
    uint32_t mappings;
    int32_t source;     /* WB_MODE_PAGEMAP_SCAN or WB_MODE_SMAPS: what this read used */
    int32_t raw_errno;  /* writing the raw text to raw_fd failed with this errno; 0: written whole (or no raw_fd) */
    uint32_t generation;           /* this read's number (1, 2, ...) */
    uint32_t previous_generation;  /* the read `previous` indices refer to; 0: none (first read, or another pid) */
    uint32_t unused;
};

/*
 * Reads the mappings of process `pid` (0: this process). With raw_fd >= 0 the text the figures came from is
 * written there as it is read: smaps itself, or (PAGEMAP_SCAN) each maps line with its Rss and Anonymous in smaps'
 * format. 0, or -errno (nothing usable in `out`, nor in the mappings until the next read that succeeds).
 */
int workbench_read_process(int pid, int raw_fd, int mode, struct wb_process *out);
const struct wb_mapping *workbench_snapshot_mappings(void);
const char *workbench_snapshot_pool(void);

/* The stack pointer of each thread of `pid` waiting in a system call, sorted; *threads: all its threads. The count
 * written (at most max), or -errno. */
int workbench_stack_pointers(int pid, uint64_t *pointers, int max, int *threads);

/* pymalloc's pools in use (allocated and available blocks, pool headers, quantization), from the text that
 * `stats` (CPython's _PyObject_DebugMallocStats, called with the GIL held) prints; -1 when it prints none. */
long long workbench_pymalloc_pools(int (*stats)(void *stream));

/* --- the allocator the probe found (probe.c) ------------------------------------------------------------------ */

/* "jemalloc", "tcmalloc", "mimalloc", "glibc" or "unknown". */
const char *workbench_allocator_backend(void);
/* Its `allocated` figure as workbench/probes/allocator.py reads it (jemalloc stats.allocated, glibc uordblks +
 * hblkhd, tcmalloc generic.current_allocated_bytes), in a few microseconds; 0 or -ENOTSUP (mimalloc, unknown). */
int workbench_allocator_allocated(uint64_t *bytes);
/* jemalloc's figures of a snapshot (workbench/probes/allocator.py, JemallocBackend.FIGURES, in that order) after
 * one `epoch`, in one call: values[i] is set where bit i of the returned mask is (a key jemalloc did not answer is
 * left out); -ENOTSUP for another allocator, -EINVAL when `max` is not the number of figures. */
long long workbench_jemalloc_figures(int64_t *values, int max);
/* Returns the blocks the calling thread's cache holds (freed, but counted in `allocated` until then) to the
 * allocator (jemalloc's thread.tcache.flush); 0, or -ENOTSUP for an allocator whose figure does not count them. */
int workbench_allocator_flush_thread_cache(void);
/* The extension of its full statistics ("json", "txt", "xml"), or NULL when it has none. */
const char *workbench_allocator_dump_extension(void);
/* Its full statistics written to `fd` as the allocator prints them (jemalloc's malloc_stats_print "J", glibc's
 * malloc_info, ...), without a copy in between; 0 or -errno. */
int workbench_allocator_dump(int fd);
/* The same without jemalloc's per-arena statistics (malloc_stats_print "Ja": the merged arena, the bins and large
 * classes, the totals; a quarter of the text and of its cost); the other allocators' as workbench_allocator_dump. */
int workbench_allocator_dump_merged(int fd);

/* A size class with live allocations, all arenas merged (jemalloc). */
struct wb_size_class {
    uint64_t size_bytes;
    uint64_t count;  /* live regions (small) or extents (large) */
    uint64_t slabs;  /* small: the slabs the regions live in (0 for a large class) */
    uint32_t regions_per_slab;  /* small: regions a slab holds (0 for a large class) */
    uint32_t large;  /* 0: a small bin, 1: a large size class */
};
/* jemalloc's live size classes read by MIB (no text in between), small bins then large classes; the count written,
 * -ENOTSUP for another allocator or a jemalloc without statistics, -E2BIG when more than `max`. */
int workbench_size_classes(struct wb_size_class *out, int max);

#endif
