"""The device a run computes on (impasto/device.py): its choice, bfloat16, repeatable GPU runs."""

import pytest
import torch

import impasto
from impasto import device
from impasto.device import _cpu_flags, native_bfloat16, repeatable, resolve_device, uses_bfloat16


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(impasto.ConfigError, match="unknown device 'gpu7'"):
        resolve_device("gpu7")
    with pytest.raises(impasto.ConfigError, match="no such CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU"):
        resolve_device("cuda:99")


def test_repeatable_keeps_cudnn_deterministic_until_the_last_concurrent_run_ends():
    cuda, before = torch.device("cuda"), torch.backends.cudnn.deterministic  # no GPU needed: only a flag
    first, second = repeatable(cuda), repeatable(cuda)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert torch.backends.cudnn.deterministic is True
    second.__exit__(None, None, None)
    assert torch.backends.cudnn.deterministic is before
    with repeatable(torch.device("cpu")):
        assert torch.backends.cudnn.deterministic is before


def test_precision_auto_uses_bfloat16_only_on_cpus_that_have_it():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert uses_bfloat16("bfloat16", gpu) and not uses_bfloat16("float32", cpu)
    assert not uses_bfloat16("auto", gpu)  # unmeasured on GPUs: float32
    try:  # the test's own reading of the CPU's flags, to compare with the code's
        with open("/proc/cpuinfo") as cpuinfo:
            flags = set(next(line for line in cpuinfo if line.startswith("flags")).split(":", 1)[1].split())
    except OSError:
        flags = set()  # not Linux: auto is float32 there
    assert _cpu_flags() == flags
    assert uses_bfloat16("auto", cpu) == bool({"avx512_bf16", "amx_bf16"} & flags)
    assert native_bfloat16() == (bool({"avx512_bf16", "amx_bf16"} & flags) if flags else None)


@pytest.mark.parametrize("flags, native", [({"avx2", "fma"}, False), ({"avx512f", "avx512_bf16"}, True),
                                           ({"amx_bf16"}, True), (set(), None)])
def test_native_bfloat16_is_read_from_the_flags_and_unknown_without_them(monkeypatch, flags, native):
    monkeypatch.setattr(device, "_cpu_flags", lambda: flags)
    assert device.native_bfloat16() is native
    assert device.uses_bfloat16("auto", torch.device("cpu")) is (native is True)
