"""A web job through a real `impasto serve` against the same painting in a script's main thread.

    python benchmarks/bench_serve.py [--size 512] [--rounds 3] [--iterations N] [--poll-every 1]

golden_gate × starry_night (../shared/images) with the default settings at --size. Each round runs
both cases once, each in a fresh process, alternating:
  serve   `python -m impasto serve` on a free port; one job posted as the web page posts it, then
          asked for every --poll-every seconds until it ends; the server is stopped after it
  main    `impasto.stylize` in the main thread of a fresh Python, as `impasto` paints
Both are timed by the run's own clock (the elapsed seconds of its last step, the job's `elapsed`), so
reading the uploads and starting the server are not counted. Prints each run's seconds, page faults
and system time (the server's whole process around the job; Linux's /proc), then the medians and the
ratio of the server's to the main thread's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
PHOTO, PAINTING = SHARED / "content/golden_gate.jpg", SHARED / "style/starry_night.jpg"
TICKS = os.sysconf("SC_CLK_TCK")


def main_run(size: int, iterations: int | None) -> dict:
    """The painting in a fresh Python's main thread: its own clock, page faults and system time."""
    script = ("import json, resource, sys, impasto\n"
              "size, iterations = int(sys.argv[1]), (int(sys.argv[2]) if sys.argv[2] else None)\n"
              "settings = {'max_size': size, **({'iterations': iterations} if iterations else {})}\n"
              "last = {}\n"
              "before = resource.getrusage(resource.RUSAGE_SELF)\n"
              f"impasto.stylize({str(PHOTO)!r}, {str(PAINTING)!r}, impasto.Config(**settings),\n"
              "                callback=lambda event: last.update(elapsed=event.elapsed))\n"
              "after = resource.getrusage(resource.RUSAGE_SELF)\n"
              "print(json.dumps({'seconds': last['elapsed'], 'faults': after.ru_minflt - before.ru_minflt,\n"
              "                  'system': after.ru_stime - before.ru_stime}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(size), str(iterations or "")], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def serve_job(size: int, iterations: int | None, poll_every: float = 1.0) -> dict:
    """One job through a real server started for it: the job's own clock, and the page faults and
    system time of the server's process while the job ran."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/"
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "impasto", "serve", "--port", str(port), "--data-dir", data,
                                   "--max-size", str(max(size, 1024))],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(url + "settings", server)
            before = _process_counts(server.pid)
            fields = {"max_size": str(size), **({"iterations": str(iterations)} if iterations else {})}
            job = _post_job(url + "jobs", fields)
            while job["status"] in ("queued", "running"):
                time.sleep(poll_every)
                with urllib.request.urlopen(url + f"jobs/{job['id']}") as response:
                    job = json.load(response)
            after = _process_counts(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    if job["status"] != "done":
        raise RuntimeError(f"the job ended {job['status']}: {job.get('error')}")
    return {"seconds": job["elapsed"], **{key: after[key] - before[key] for key in after}}


def _wait_for(url: str, server: subprocess.Popen) -> None:
    for _ in range(600):  # importing torch takes a few seconds
        if server.poll() is not None:
            raise RuntimeError(f"impasto serve exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("impasto serve never answered")


def _process_counts(pid: int) -> dict:
    """The page faults and system seconds of a whole process so far (fields 10 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"faults": int(fields[7]), "system": int(fields[12]) / TICKS}


def _post_job(url: str, fields: dict[str, str]) -> dict:
    """POST /api/jobs as multipart/form-data: the photo, the painting and the settings."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
             f"Content-Type: image/jpeg\r\n\r\n".encode() + path.read_bytes() + b"\r\n"
             for name, path in (("content", PHOTO), ("style", PAINTING))]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
              for name, value in fields.items()]
    request = urllib.request.Request(url, data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, help="steps (default: the Config's)")
    parser.add_argument("--poll-every", type=float, default=1.0, help="seconds between the job's polls")
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"serve": [], "main": []}
    for round_ in range(1, args.rounds + 1):
        for case in seconds:
            run = (serve_job(args.size, args.iterations, args.poll_every) if case == "serve"
                   else main_run(args.size, args.iterations))
            seconds[case].append(run["seconds"])
            print(f"round {round_} {case:>5}: {run['seconds']:7.2f} s, {run['faults']:>9} page faults, "
                  f"{run['system']:6.2f} s of system time", flush=True)
    base = statistics.median(seconds["main"])
    for case, runs in seconds.items():
        print(f"{case:>5}: median {statistics.median(runs):7.2f} s, {statistics.median(runs) / base:.3f}x "
              "the main thread's")


if __name__ == "__main__":
    main()
