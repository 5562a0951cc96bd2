/*
 * workbench_ranges.h: the address ranges an allocator has mapped, kept by the allocator itself so that the kernel's
 * residency of exactly those pages can be read (/proc/self/smaps, /proc/self/pagemap). Included by one source file
 * of the allocator (see the .patch files beside each recipe); the allocator calls workbench_ranges_add() after each
 * successful mmap and workbench_ranges_remove() before each munmap.
 *
 * One export, workbench_mapped_ranges(), copies the ranges out. Rules: no allocation (a static table), no libc call
 * that may allocate, never aborts; a table that overflows is reported, not grown.
 */
#ifndef WORKBENCH_RANGES_H
#define WORKBENCH_RANGES_H

#include <stddef.h>
#include <stdint.h>

#define WORKBENCH_RANGES_MAX 16384

static struct {
    uintptr_t start, end;
} workbench_ranges[WORKBENCH_RANGES_MAX];
static size_t workbench_ranges_count;
static int workbench_ranges_overflowed;
static volatile char workbench_ranges_busy;

static void workbench_ranges_lock(void) {
    while (__atomic_test_and_set(&workbench_ranges_busy, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&workbench_ranges_busy, __ATOMIC_RELAXED)) {
        }
    }
}

static void workbench_ranges_unlock(void) { __atomic_clear(&workbench_ranges_busy, __ATOMIC_RELEASE); }

/* [start, start + size) is mapped now: joined to a range it touches, else a range of its own. */
static void workbench_ranges_add(const void *start, size_t size) {
    uintptr_t low = (uintptr_t)start, high = low + size;
    size_t i;
    if (start == NULL || size == 0) {
        return;
    }
    workbench_ranges_lock();
    for (i = 0; i < workbench_ranges_count; i++) {
        if (workbench_ranges[i].end == low) {
            workbench_ranges[i].end = high;
            break;
        }
        if (workbench_ranges[i].start == high) {
            workbench_ranges[i].start = low;
            break;
        }
    }
    if (i == workbench_ranges_count) {
        if (workbench_ranges_count < WORKBENCH_RANGES_MAX) {
            workbench_ranges[workbench_ranges_count].start = low;
            workbench_ranges[workbench_ranges_count].end = high;
            workbench_ranges_count++;
        } else {
            workbench_ranges_overflowed = 1;
        }
    }
    workbench_ranges_unlock();
}

/* [start, start + size) is about to be unmapped: cut out of every range it overlaps (a range may split in two). */
static void workbench_ranges_remove(const void *start, size_t size) {
    uintptr_t low = (uintptr_t)start, high = low + size;
    size_t i = 0;
    if (size == 0) {
        return;
    }
    workbench_ranges_lock();
    while (i < workbench_ranges_count) {
        uintptr_t s = workbench_ranges[i].start, e = workbench_ranges[i].end;
        if (e <= low || s >= high) {
            i++;
            continue;
        }
        if (s < low && e > high) { /* the hole is inside: keep the head here, the tail in a new range */
            if (workbench_ranges_count < WORKBENCH_RANGES_MAX) {
                workbench_ranges[workbench_ranges_count].start = high;
                workbench_ranges[workbench_ranges_count].end = e;
                workbench_ranges_count++;
            } else {
                workbench_ranges_overflowed = 1;
            }
            workbench_ranges[i].end = low;
            i++;
        } else if (s < low) {
            workbench_ranges[i].end = low;
            i++;
        } else if (e > high) {
            workbench_ranges[i].start = high;
            i++;
        } else { /* wholly unmapped: the last range takes its place */
            workbench_ranges[i] = workbench_ranges[--workbench_ranges_count];
        }
    }
    workbench_ranges_unlock();
}

/*
 * Copies up to max_ranges ranges as (start, end) pairs into pairs[0 .. 2 * max_ranges) and returns how many there
 * are (more than max_ranges: call again with room for them all), or -1 when the table once overflowed and the
 * ranges are incomplete.
 */
__attribute__((visibility("default"))) long workbench_mapped_ranges(uintptr_t *pairs, size_t max_ranges) {
    size_t i, count;
    workbench_ranges_lock();
    count = workbench_ranges_count;
    for (i = 0; i < count && i < max_ranges; i++) {
        pairs[2 * i] = workbench_ranges[i].start;
        pairs[2 * i + 1] = workbench_ranges[i].end;
    }
    workbench_ranges_unlock();
    return workbench_ranges_overflowed ? -1 : (long)count;
}

#endif
