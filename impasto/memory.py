"""How much memory a run needs, and the guard that refuses up front a size that cannot fit.

Memory grows linearly with the pixels of the largest size. For the backward pass VGG-19 keeps every
convolution's and pooling's output (about 1.3 KB per pixel up to relu5_1 in float32, half that in
bfloat16; half of it the two 64-channel layers at full resolution); the backward pass holds a few
gradients of the largest layer at once; L-BFGS keeps 2 × 20 past steps of the pixels, in float32.
A run's steps are fastest when the heap keeps the blocks each step frees for the next one, which
takes up to three quarters as much memory again; when that does not fit, the blocks go back to the
system at once, and when that does not fit either, the extractor is *checkpointed*: only the requested
features are kept, and the layers between two of them run again during the backward pass (about a
third more time). ``estimate`` counts those tensors; its constants were fitted to the peak RSS of real runs
(``python benchmarks/bench_memory.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .config import MAX_SIZE, MIN_SIZE, Config, printed_length
from .errors import ConfigError
from .imageio import canvas_margin, long_edge_shape
from .optimize import LBFGS_HISTORY
from .vgg import BLOCK_WIDTHS, LAYER_NAMES

GB = 1024**3
# Bytes of the process before any image: Python, torch, the weights (fitted; see the module doc).
OVERHEAD = 0.5 * GB
# The ways a run uses memory, fastest first, as (checkpointed, keeps_freed): plain, keeping freed
# blocks on the heap for the next step (``manage_freed_memory``); plain, giving them back at once;
# checkpointed, giving them back. ``plan`` takes the first that fits. The second needs glibc, whose
# freed memory impasto can tell apart; elsewhere (a GPU, macOS, Windows) a plain run is counted as
# keeping it, since no measurement says how much less it would hold.
MODES = ((False, True), (False, False), (True, False))
# Measured peak RSS over the tensors counted (allocator slack, oneDNN's scratch buffers; fitted), in
# each mode: keeping freed blocks peaked at 1.50 and 1.53 times the count on an Intel CPU with AMX
# (2048×1153 and 3840×2161, 22 steps), and on an AMD one with AVX-512 BF16 at 1.52 (a 1024×768 print),
# 1.67 (2048×1535, 22 steps) and 1.82-1.85 (a 2048×1535 print, at its last size's 20th step, as
# L-BFGS's history fills); giving them back at 0.95, 1.01, 1.04 and 1.05 times (1024×576, 2048×1153,
# 2048×1536 and 3840×2880; 1.04 on the AMD CPU at 2048×1535), checkpointed below 1.
SLACK = {(False, True): 1.9, (False, False): 1.1, (True, False): 1.0}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameter numbers
_MOST = 2**31 - 1  # mallopt takes an int
_runs = 0  # runs on the CPU going on in this process (``run_on_the_heap``)
_runs_lock = threading.Lock()


def manage_freed_memory(keep: bool) -> None:
    """Set, at each size of a run on the CPU, what glibc does with the large blocks each step frees.

    Every step allocates and frees the same features and gradients. By default glibc maps each block
    above an adaptive threshold (at most 32 MB) afresh and unmaps it when freed, and the kernel zeroes
    every page of a new mapping: on an Intel CPU with AMX, a quarter of a 1024 or 2048 px step in
    bfloat16. A run that may ``keep`` freed blocks (the plan's ``keeps_freed``) keeps them on the heap
    for the next step instead (1.33x faster at 1024 px, 1.37x at 2048 px, for up to three quarters as
    much memory again at the peak), if it allocates from glibc's main heap and no other run is going on
    in the process. The main thread does; other threads allocate from secondary heaps, which map any block over 64 MB
    afresh whatever the setting and unmap a whole heap once it is free, unless the process started
    with ``MALLOC_ARENA_MAX=1`` (one heap for all its threads). The settings are the process's: a run that
    may keep blocks while another goes on leaves them as they are, and one that must save memory sets
    them for both: every block over 1 MB gets its own mapping, unmapped when freed. Either returns to
    the system first what the heap holds free, as blocks of the size before. Call it inside
    ``run_on_the_heap``. Other allocators (macOS, Windows, musl) are left alone.
    """
    with _runs_lock:
        if not keep:
            _set_glibc(mmap_threshold=1 << 20, trim_threshold=128 << 10)  # the trim threshold's default
        elif _runs == 1 and _on_main_heap():
            _set_glibc(mmap_threshold=_MOST, trim_threshold=_MOST)


@contextlib.contextmanager
def run_on_the_heap() -> Iterator[None]:
    """Count a run on the CPU among those going on while it lasts (``manage_freed_memory``); when the
    last one ends, leave glibc for the rest of the process (a notebook, say) as its adaptive
    thresholds end up (blocks over 32 MB mapped, the heap trimmed above 64 MB; glibc cannot be told to
    adapt again), and give what the heap holds free back to the system."""
    global _runs
    with _runs_lock:
        _runs += 1
    try:
        yield
    finally:
        with _runs_lock:
            _runs -= 1
            if _runs == 0:
                _set_glibc(mmap_threshold=32 << 20, trim_threshold=64 << 20)


def share_main_heap() -> None:
    """Have the threads this process starts from now on allocate from glibc's main heap, as with
    ``MALLOC_ARENA_MAX=1``, so that runs in them can keep freed memory (``manage_freed_memory``)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)


def _on_main_heap() -> bool:
    """Whether this thread allocates from glibc's main heap, the one that grows by ``brk`` (the
    ``[heap]`` mapping): a block it takes lies there."""
    if threading.current_thread() is threading.main_thread():
        return True
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    block = libc.malloc(64)
    libc.free(block)
    try:
        with open("/proc/self/maps") as maps:
            spans = [line.split()[0] for line in maps if line.rstrip().endswith("[heap]")]
    except OSError:
        return False
    return any(int(start, 16) <= block < int(end, 16) for start, end in (span.split("-") for span in spans))


def _glibc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (it has ``mallopt``); None elsewhere (macOS, Windows, musl)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _set_glibc(mmap_threshold: int, trim_threshold: int) -> None:
    """Set glibc's thresholds, then give what its heap holds free back to the system."""
    libc = _glibc()
    if libc is None:
        return
    if libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold):  # the trim threshold alone would map every block
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    libc.malloc_trim(0)


@dataclass(frozen=True)
class MemoryPlan:
    """The peak memory a run will need at its largest size, and how it must use memory to fit."""

    checkpointed: bool
    keeps_freed: bool  # freed blocks stay on the heap for the next step (``manage_freed_memory``)
    estimate: float  # bytes at the peak, in the chosen mode

    @property
    def slowdown(self) -> float:
        """About how many times longer a step takes than one that keeps freed memory: giving it back
        1.6-1.7 times, checkpointed 1.35 times again (benchmarks/README.md, Memory)."""
        if self.keeps_freed:
            return 1.0
        return 1.65 * (1.35 if self.checkpointed else 1.0)


def kept_tensors(layers: tuple[str, ...], pooling: str, value_bytes: int = 4) -> list[tuple[str, float]]:
    """(layer, bytes per input pixel) of each tensor the forward pass keeps for the backward pass.

    ``value_bytes``: 4 for float32 features, 2 for bfloat16. A ReLU works in place on its
    convolution's output, so the pair is one tensor, unless the convolution's output is requested
    (then both are kept); max pooling also keeps an int64 index per output value.
    """
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    kept, channels = [], 3
    index_bytes = 8 if pooling == "max" else 0
    for name in LAYER_NAMES[: deepest + 1]:
        block = int(name[4])
        if name.startswith(("relu", "conv")):
            channels = BLOCK_WIDTHS[block - 1]
        if name.startswith("relu") or name.startswith("conv") and name in layers:
            kept.append((name, channels / 4 ** (block - 1) * value_bytes))
        elif name.startswith("pool"):
            kept.append((name, channels / 4**block * (value_bytes + index_bytes)))
    return kept


def pass_bytes(layers: tuple[str, ...], pooling: str, checkpointed: bool, value_bytes: int = 4) -> float:
    """Bytes per input pixel held at the peak of one forward + backward pass of the extractor."""
    kept = kept_tensors(layers, pooling, value_bytes)
    largest = max(size for name, size in kept if not name.startswith("pool"))  # conv1_1 alone keeps no ReLU
    gradients = 3 * largest  # a layer's output and input gradients, and a feature's Gram gradient
    if not checkpointed:
        return sum(size for _, size in kept) + gradients
    features = sum(size for name, size in kept if name in layers)
    stretches, stretch = [], 0.0  # what one stretch between two requested layers keeps when rerun
    for name, size in kept:
        if name in layers:
            stretches.append(stretch)
            stretch = 0.0
        else:
            stretch += size
    return features + max(stretches) + gradients


def estimate(config: Config, height: int, width: int, checkpointed: bool, bfloat16: bool = False,
             keeps_freed: bool | None = None) -> float:
    """Peak bytes of a run of ``config`` whose largest size is height × width pixels; ``bfloat16``:
    whether its features are computed in bfloat16 (``impasto.device.uses_bfloat16``);
    ``keeps_freed``: whether freed blocks stay on the heap (by default, when not checkpointed)."""
    pixels = _canvas_pixels(config, height, width)
    optimizer_floats = 3 * (2 * LBFGS_HISTORY + 6) if config.optimizer == "lbfgs" else 3 * 6
    sizes = config.replace(max_size=max(height, width)).painted_sizes()
    # Coarse-to-fine: the last size runs the network of the sizes after the first (``Config.refining``),
    # and the composition term a second pass, of the whole network, on the picture shrunk to the first size.
    last = config.refining() if len(sizes) > 1 else config
    composition = (_canvas_pixels(config, *long_edge_shape(height, width, sizes[0]))
                   if len(sizes) > 1 and config.composition_weight else 0)
    optimisation = (pixels * _feature_bytes(last, checkpointed, bfloat16)
                    + composition * _feature_bytes(config, checkpointed, bfloat16) + pixels * 4 * optimizer_floats)
    # The paintings' Grams are taken in float32 without gradients: two layers alive at a time, at style_scale².
    # (the paintings are scaled to the picture's pixels, not the canvas's)
    largest = max(size for _, size in kept_tensors(last.layers, config.pooling))
    targets = height * width * config.style_scale**2 * 2 * largest
    keeps_freed = not checkpointed if keeps_freed is None else keeps_freed
    return OVERHEAD + SLACK[checkpointed, keeps_freed] * max(optimisation, targets)


def _feature_bytes(config: Config, checkpointed: bool, bfloat16: bool) -> float:
    """Bytes per pixel of one pass of ``config``'s network at the peak; with masks, each painting's region
    multiplies every style feature by its mask (float32, kept)."""
    layers = config.layers
    masked = sum(size for name, size in kept_tensors(layers, config.pooling) if name in config.style_layers)
    return pass_bytes(layers, config.pooling, checkpointed, 2 if bfloat16 else 4) + len(config.masks) * masked


def _canvas_pixels(config: Config, height: int, width: int) -> int:
    """Pixels a run paints for a height × width picture: its canvas, with the margin."""
    margin = canvas_margin(config.margin, height, width)
    return (height + 2 * margin) * (width + 2 * margin)


def available(device: torch.device) -> float:
    """Bytes this run may use by default: the GPU's memory, or the RAM not in use by others."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])  # free now
    if device.type == "mps":
        return float(torch.mps.recommended_max_memory())
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return float(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:  # macOS and other Unixes: all of the RAM
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # Windows has no sysconf: no guard but max_memory
        return math.inf


def plan(config: Config, photo_height: int, photo_width: int, device: torch.device,
         bfloat16: bool = False, held: float = 0.0) -> MemoryPlan:
    """The fastest of the MODES that fits; raise ConfigError if none does. ``held``: bytes the inputs
    already take (the photo and paintings as read, at their own sizes)."""
    budget = config.max_memory * GB if config.max_memory else available(device)
    height, width = long_edge_shape(photo_height, photo_width, config.max_size)
    returns_freed = device.type == "cpu" and _glibc() is not None
    for checkpointed, keeps_freed in MODES:
        if not (checkpointed or keeps_freed or returns_freed):
            continue
        need = estimate(config, height, width, checkpointed, bfloat16, keeps_freed) + held
        if need <= budget:
            return MemoryPlan(checkpointed, keeps_freed, need)
    fits = largest_fitting(config, photo_height, photo_width, budget - held, bfloat16)
    if config.max_memory:
        limit, advice = f"max_memory is {config.max_memory:g} GB", "raise max_memory"
    else:
        limit, advice = f"only {budget / GB:.2f} GB of memory is available", "free some memory"
    if fits:  # and, for a print, how long a print that is, and the dpi that keeps this print's length
        advice = f"use max_size {fits} or less"
        if config.dpi:
            advice += f" ({printed_length(fits, config.dpi)})"
            lower_dpi = fits * config.dpi // config.max_size
            advice += f", or a dpi of {lower_dpi} or less for a print this long" if lower_dpi else ""
    if config.style_scale > 1:  # the painting is read at style_scale² times the picture's pixels
        advice += f", or a style_scale below {config.style_scale:g}"
    raise ConfigError(f"a {width}×{height} painting needs about {need / GB:.2f} GB even with checkpointing, "
                      f"but {limit}: {advice}")


def largest_fitting(config: Config, photo_height: int, photo_width: int, budget: float,
                    bfloat16: bool = False) -> int:
    """The largest max_size (long edge, pixels) that fits in ``budget`` bytes, checkpointed; 0 if none."""
    low, high = MIN_SIZE - 1, MAX_SIZE
    while low < high:  # estimate grows with the size: bisect
        middle = (low + high + 1) // 2
        height, width = long_edge_shape(photo_height, photo_width, middle)
        if estimate(config, height, width, True, bfloat16) <= budget:
            low = middle
        else:
            high = middle - 1
    return low if low >= MIN_SIZE else 0
