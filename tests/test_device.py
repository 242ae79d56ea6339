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


def test_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch):
    for cuda, mps, picked in ((True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        assert resolve_device("auto") == torch.device(picked)


def test_a_cuda_index_must_exist_and_mps_must_be_available(monkeypatch):
    # No GPU needed: the machine's CUDA GPUs are faked. Indices run from 0 to the count less one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(impasto.ConfigError, match=r"no such CUDA GPU: this machine has 2 \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(impasto.ConfigError, match=r"this machine has 1 \(cuda:0\)$"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(impasto.ConfigError, match="'mps' asked for, but MPS is not available"):
        resolve_device("mps")


def test_auto_precision_is_float32_on_mps_even_on_a_bfloat16_cpu(monkeypatch):
    monkeypatch.setattr(device, "_cpu_flags", lambda: {"amx_bf16"})
    assert uses_bfloat16("auto", torch.device("cpu")) and not uses_bfloat16("auto", torch.device("mps"))
    before = torch.backends.cudnn.deterministic
    with repeatable(torch.device("mps")):  # deterministic cuDNN is for CUDA runs only
        assert torch.backends.cudnn.deterministic is before


def test_machine_names_the_device_and_on_a_cpu_its_threads(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # the thread count splits a CPU's sums
    assert device.machine(torch.device("cpu")) == {"device": "cpu", "threads": 3}
    assert device.machine(torch.device("cuda", 1)) == {"device": "cuda:1"}
    assert device.machine(torch.device("mps")) == {"device": "mps"}
