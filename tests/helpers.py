"""Small image factories and probes shared by several test modules (imported as `helpers`: pytest puts
tests/ on the path)."""
import ctypes
import platform
import struct
import zlib

import numpy as np
import torch

from impasto import api, read_image
from impasto.device import resolve_device, uses_bfloat16
from impasto.memory import MODES, estimate

# glibc's allocator, whose handling of freed memory impasto sets for each run (memory.manage_freed_memory),
# in a version with mallinfo2 (2.33 and later), which bytes_mapped_for_a_new_block reads
_LIBC, _LIBC_VERSION = platform.libc_ver()
ON_GLIBC = _LIBC == "glibc"  # where a run on the CPU can give freed memory back rather than checkpoint
GLIBC = ON_GLIBC and tuple(int(part) for part in _LIBC_VERSION.split(".")[:2]) >= (2, 33)

# A run of two sizes (32 then 64 px), 12 steps each: small enough to stop and resume in a few seconds.
TWO_SIZES = dict(max_size=64, min_size=32, coarse_iterations=12, iterations=12, tolerance=0.0)


def fail_at_the_second_size(monkeypatch) -> None:
    """Have the next run fail as its second size's targets are built (out of memory, say), which no tiny
    run can do for real."""
    at_size, calls = api._at_size, []

    def fails_at_the_second_size(*args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no room for the 64 px targets")
        return at_size(*args)

    monkeypatch.setattr(api, "_at_size", fails_at_the_second_size)


def memory_needs(config, content, style, height: int, width: int) -> list[float]:
    """Bytes a one-size run of ``config`` painting ``content`` at height × width in the style of ``style``
    needs in each way of using memory (``impasto.memory.MODES``, fastest first), as its plan counts them:
    the estimate, and the two images as read."""
    bfloat16 = uses_bfloat16(config.precision, resolve_device(config.device))  # as the run will
    held = read_image(content).nbytes + read_image(style).nbytes
    return [estimate(config, height, width, checkpointed, bfloat16, keeps_freed) + held
            for checkpointed, keeps_freed in MODES]


def noise(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """Random 8-bit RGB pixels, height × width × 3."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels: a decompression bomb for the size guards."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def bytes_mapped_for_a_new_block(beyond: int = 16 << 20) -> int:
    """How much of a new block glibc maps on its own, rather than taking it from its heap (where
    a freed block stays for the next one): the block is ``beyond`` bytes larger than all the heap
    holds free, and never touched, so it takes no memory."""
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = _MallInfo2
    before = mallinfo2()
    block = torch.empty(before.fordblks + beyond, dtype=torch.uint8)
    mapped = mallinfo2().hblkhd - before.hblkhd
    del block
    return mapped
