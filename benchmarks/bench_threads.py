"""A painting in a thread of a program's own against the same painting in the main thread.

    python benchmarks/bench_threads.py [--size 512] [--rounds 3]

Each painting (golden_gate × starry_night, ../shared/images, the default settings at --size) runs in a
fresh process, because glibc gives a thread its heap when the thread first allocates and keeps it,
after a tiny painting in the same thread that loads the weights. The cases:
  main     the main thread, as `impasto` paints
  own      a worker thread with a heap of its own (glibc's default)
  shared   a worker thread on the main heap (the process started with MALLOC_ARENA_MAX=1)
Each round runs every case once, in that order. Prints each painting's seconds and the page faults of
its thread, then the medians and their ratios to the main thread's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
PHOTO, PAINTING = SHARED / "content/golden_gate.jpg", SHARED / "style/starry_night.jpg"
CASES = ("main", "own", "shared")


def paint(size: int) -> dict:
    """One default painting at ``size`` in this thread, after a tiny one that loads the weights: its
    seconds and this thread's page faults."""
    import impasto  # noqa: PLC0415

    impasto.stylize(PHOTO, PAINTING, impasto.Config(max_size=64, iterations=2))
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    started = time.perf_counter()
    impasto.stylize(PHOTO, PAINTING, impasto.Config(max_size=size))
    return {"seconds": time.perf_counter() - started,
            "faults": resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before}


def one_case(case: str, size: int) -> dict:
    """Run in the case's own process: the paintings where the case says. The main thread computes
    nothing in the others: a second thread's OpenMP team would make both spin less before they sleep
    (libgomp's throttled spinning, once its threads outnumber the cores)."""
    if case == "main":
        return paint(size)
    measured: list[dict] = []
    worker = threading.Thread(target=lambda: measured.append(paint(size)))
    worker.start()
    worker.join()
    return measured[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one process's painting
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case, args.size)))
        return
    seconds: dict[str, list[float]] = {case: [] for case in CASES}
    for round_ in range(1, args.rounds + 1):
        for case in CASES:
            one_heap = {"MALLOC_ARENA_MAX": "1"} if case == "shared" else {}
            done = subprocess.run([sys.executable, __file__, "--case", case, "--size", str(args.size)],
                                  capture_output=True, text=True, check=True, env={**os.environ, **one_heap})
            run = json.loads(done.stdout.splitlines()[-1])
            seconds[case].append(run["seconds"])
            print(f"round {round_} {case:>6}: {run['seconds']:7.2f} s, {run['faults']:>9} page faults", flush=True)
    base = statistics.median(seconds["main"])
    for case in CASES:
        median = statistics.median(seconds[case])
        print(f"{case:>6}: median {median:7.2f} s, {median / base:.3f}x the main thread's")


if __name__ == "__main__":
    main()
