"""Ended threads' stacks in glibc's stack cache: their shape, their descriptor's tid, and the owner they get."""

from __future__ import annotations

import ctypes
import struct
import threading
import time
from collections.abc import Callable

from workbench.probes.process import Mapping
from workbench.probes.regions import Region, attribute
from workbench.probes.thread_stacks import DescriptorReader, descriptor_tid, has_stack_shape

KIB = 1024
STACK = 1_032_192  # a Java thread's stack above HotSpot's 16 KiB of guard zones (-Xss1m)
TID_OFFSET = 720


def _memory(end: int, descriptor: int | None, tid: int) -> dict[int, bytes]:
    """The top two pages below ``end``, with a thread descriptor at ``descriptor`` holding ``tid``."""
    low = end - 2 * 4096
    page = bytearray(2 * 4096)
    if descriptor is not None:
        at = descriptor - low
        struct.pack_into("<QQQ", page, at, descriptor, 0x5555_0000_1000, descriptor)
        struct.pack_into("<i", page, at + TID_OFFSET, tid)
    return {low: bytes(page[:4096]), low + 4096: bytes(page[4096:])}


def _reader(memory: dict[int, bytes]) -> Callable[[int, int], bytes | memoryview | None]:
    def read(address: int, size: int) -> bytes | None:
        for low, data in memory.items():
            if low <= address and address + size <= low + len(data):
                return data[address - low:address - low + size]
        return None
    return read


def test_the_descriptor_is_found_by_its_header_and_says_the_tid() -> None:
    end = 0x7F00_0010_0000
    assert descriptor_tid(end, _reader(_memory(end, end - 0x940, 0)), TID_OFFSET) == (0, 0x940)
    assert descriptor_tid(end, _reader(_memory(end, end - 0x940, 4321)), TID_OFFSET) == (4321, 0x940)
    # aligned further down (a large static TLS alignment): in the page below
    assert descriptor_tid(end, _reader(_memory(end, end - 4096 - 0x400, 0)), TID_OFFSET) == (0, 0x1400)
    assert descriptor_tid(end, _reader(_memory(end, None, 0)), TID_OFFSET) is None
    assert descriptor_tid(end, _reader({}), TID_OFFSET) is None  # not mapped
    # once known where glibc puts them, only there: a stack with none there is not one glibc made
    assert descriptor_tid(end, _reader(_memory(end, end - 0x940, 7)), TID_OFFSET, 0x940) == (7, 0x940)
    assert descriptor_tid(end, _reader(_memory(end, end - 0x940, 7)), TID_OFFSET, 0x980) is None


def _mapping(start: int, size: int, perms: str = "rw-p", anon: int = 0, name: str = "") -> Mapping:
    return Mapping(start, start + size, perms, name, size, anon, anon)


def test_a_stack_shape_is_a_read_write_mapping_right_above_an_inaccessible_one() -> None:
    guard = _mapping(0x7F00_0000_0000, 16 * KIB, "---p")
    stack = _mapping(guard.end, STACK, anon=24 * KIB)
    assert has_stack_shape(stack, guard)
    assert not has_stack_shape(stack, None)
    assert not has_stack_shape(stack, _mapping(guard.start - 4096, 16 * KIB, "---p"))  # not adjacent
    assert not has_stack_shape(stack, _mapping(guard.start, 16 * KIB, "r--p"))
    assert not has_stack_shape(_mapping(guard.end, STACK, "rw-s"), guard)
    assert not has_stack_shape(_mapping(guard.end, STACK, name="/lib/x.so"), guard)


def test_ended_stacks_are_cached_stacks_and_live_ones_stay_where_they_were() -> None:
    base = 0x7F00_0000_0000
    step = 16 * KIB + STACK
    mappings: list[Mapping] = []
    for index in range(5):
        mappings += [_mapping(base + index * step, 16 * KIB, "---p"),
                     _mapping(base + index * step + 16 * KIB, STACK, anon=(index + 1) * 4096 * 6)]
    lone = _mapping(base + 6 * step, 2 * 1024 * KIB, anon=40 * KIB)  # no guard below: not a stack's shape
    mappings.append(lone)
    ended = {mappings[1].start: True, mappings[3].start: True, mappings[5].start: False, mappings[7].start: None}
    asked: list[int] = []

    def ended_stack(mapping: Mapping) -> bool | None:
        asked.append(mapping.start)
        return ended.get(mapping.start)

    # the 5th stack holds a waiting thread's stack pointer: the JVM's, by its pointer; its descriptor is not read
    pointer = Region(mappings[9].start + 8 * KIB, mappings[9].start + 8 * KIB + 1, "thread-stacks", "stack-pointer")
    attribution = attribute(mappings, [pointer], "jemalloc", [], 5, allocator_ranges=[],
                            ended_stack=ended_stack)
    owners = attribution.owners
    assert owners["cached-stacks"].resident_bytes == 24 * KIB + 48 * KIB and owners["cached-stacks"].mappings == 2
    assert owners["thread-stacks"].resident_bytes == 120 * KIB  # the pointer's
    assert owners["anonymous-mmaps"].resident_bytes == 72 * KIB + 96 * KIB + 40 * KIB  # live, unknown, no shape
    assert sum(o.resident_bytes for o in owners.values()) == sum(m.anon_bytes for m in mappings)
    assert sorted(asked) == [mappings[i].start for i in (1, 3, 5, 7)]
    assert attribution.cached_stacks is not None
    assert (attribution.cached_stacks.how, attribution.cached_stacks.mappings,
            attribution.cached_stacks.resident_bytes, attribution.cached_stacks.candidates) == (
        "descriptor", 2, 72 * KIB, 3)
    # an allocator's own mapping of a stack's shape stays the allocator's: its descriptor is not read either
    asked.clear()
    recorded = attribute(mappings, [], "jemalloc", [], 5, allocator_ranges=[(mappings[1].start, mappings[1].end)],
                         ended_stack=ended_stack)
    assert recorded.owners["malloc-arenas"].resident_bytes == 24 * KIB and mappings[1].start not in asked
    assert attribute(mappings, [], None, [], 5, ended_stack=None).cached_stacks is None


def _stack_of(descriptor: int) -> Mapping:
    with open("/proc/self/maps", encoding="ascii") as maps:
        for line in maps:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= descriptor < high:
                return Mapping(low, high, fields[1], "", high - low, 0, 0)
    raise AssertionError(f"no mapping holds {descriptor:#x}")


def _ended_soon(reader: DescriptorReader, mapping: Mapping) -> bool:
    """The kernel clears an ended thread's tid when it is gone, a moment after join() returns (Python's lock)."""
    deadline = time.monotonic() + 5
    while reader.ended(mapping) is False and time.monotonic() < deadline:
        time.sleep(0.001)
    return reader.ended(mapping) is True


def test_this_process_s_threads_are_told_apart_by_their_descriptors() -> None:
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_void_p
    reader = DescriptorReader()
    assert reader.tid_offset is not None
    seen: dict[str, int] = {}
    release = threading.Event()

    def live() -> None:
        seen["live"] = libc.pthread_self()
        release.wait(10)

    def ends() -> None:
        seen["ended"] = libc.pthread_self()

    finished = threading.Thread(target=ends)
    finished.start()
    finished.join()
    waiting = threading.Thread(target=live)
    waiting.start()
    try:
        while "live" not in seen:
            threading.Event().wait(0.001)
        live_stack = _stack_of(seen["live"])
        assert reader.ended(live_stack) is False
        found = descriptor_tid(live_stack.end, reader.read, reader.tid_offset)
        assert found is not None and found[0] == waiting.native_id
        if seen["ended"] != seen["live"]:  # glibc reuses a cached stack: then the ended one is the live one
            assert _ended_soon(reader, _stack_of(seen["ended"]))
    finally:
        release.set()
        waiting.join()
    assert _ended_soon(reader, _stack_of(seen["live"]))  # ended now
