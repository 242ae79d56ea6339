"""Where a run computes: the device ('auto' picks one), whether its features are computed in
bfloat16 there, and cuDNN's deterministic algorithms, so that a seed repeats a GPU run."""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any

import torch

from .config import check_device
from .errors import ConfigError


def uses_bfloat16(precision: str, device: torch.device) -> bool:
    """Whether a run computes its features in bfloat16: 'auto' does only on CPUs with native bfloat16
    arithmetic (measured 2x faster with the same scores; elsewhere it is emulated, or unmeasured)."""
    if precision != "auto":
        return precision == "bfloat16"
    return device.type == "cpu" and native_bfloat16() is True


def native_bfloat16() -> bool | None:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX); None where it cannot be
    told (no /proc/cpuinfo). Elsewhere bfloat16 is emulated: a 512 px step took 40 times float32's on
    AVX2 (benchmarks/README.md)."""
    flags = _cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags) if flags else None


@functools.cache
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def machine(device: torch.device) -> dict[str, Any]:
    """What a run's pixels depend on besides its settings (Result.machine): the device, and on a CPU
    the number of threads, which splits each convolution's sums in a different order."""
    if device.type != "cpu":
        return {"device": str(device)}
    return {"device": "cpu", "threads": torch.get_num_threads()}


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; anything else must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    check_device(name)
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"device {name!r} asked for, but there is no such CUDA GPU: this machine has {count} "
                          f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available")
    return device


class _DeterministicCudnn:
    """While any run is inside, cuDNN uses only its deterministic algorithms.

    cuDNN's fastest convolution algorithms may add partial sums in a different order each time: on
    a GPU the same run then drifts by rounding, step after step (seen on an H200). The deterministic
    ones cost 2 % at 512 px and nothing at 2048 px there (``benchmarks/gpu.sh``). Runs are counted,
    so that concurrent ones (the web app's workers) keep the setting until the last ends, which
    restores the caller's own.
    """

    def __init__(self) -> None:
        self.lock, self.runs, self.before = threading.Lock(), 0, False

    def __enter__(self) -> None:
        with self.lock:
            if self.runs == 0:
                self.before = torch.backends.cudnn.deterministic
            self.runs += 1
            torch.backends.cudnn.deterministic = True

    def __exit__(self, *exc_info: object) -> None:
        with self.lock:
            self.runs -= 1
            if self.runs == 0:
                torch.backends.cudnn.deterministic = self.before


_DETERMINISTIC_CUDNN = _DeterministicCudnn()


def repeatable(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which the same seed repeats a run on ``device`` to the last bit."""
    return _DETERMINISTIC_CUDNN if device.type == "cuda" else contextlib.nullcontext()
