"""The job queue behind the web app: inputs and results on disk, runs in worker threads.

Nothing here knows about HTTP. A job is a folder ``<data>/jobs/<id>/`` holding the uploaded images
(``content``, ``style-0``, ...), ``job.json`` (settings, state, the loss history) and, once it has
run, ``result.png`` (with the run's metadata); while it runs, every so often, ``checkpoint.png``,
the picture as if stopped there, from which a server killed outright resumes it. Ids are uuid4 hex strings; a path is only ever built
from an id that matched ``JOB_ID`` or came from ``uuid4`` itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import Config, ImpastoError, ProgressEvent, Result, stylize
from ..api import painting_work
from ..imageio import header_size, read_metadata, save_image, to_pil, write_atomic
from ..plot import loss_kinds

log = logging.getLogger("impasto.web")

JOB_ID = re.compile(r"[0-9a-f]{32}")
_NUMBER, _NONE = (int, float), type(None)
_FIELD_TYPES = {"status": str, "created": _NUMBER, "finished": (*_NUMBER, _NONE), "step": int, "total": int,
                "elapsed": _NUMBER, "loss": (*_NUMBER, _NONE), "points": list, "stop_reason": (str, _NONE),
                "error": (str, _NONE), "size": (list, _NONE), "stopped_at": (dict, _NONE),
                "pace": (*_NUMBER, _NONE)}  # job.json's, checked when read
FINISHED = ("done", "cancelled", "failed")  # the other states: "queued", "running"
INTERRUPTED = "the server stopped before this job finished"
# Ctrl-C on the server cancels its jobs: the page must not call that the user's Cancel.
SERVER_STOPPED = "the server was stopped during this painting; Resume goes on from where it stopped"
STOPPED_WAITING = "the server was stopped before this job started"
# A server killed outright (out of memory, a power cut) loses at most this much of a painting: a
# checkpoint takes ~30 ms to write at 512 px, ~1.2 s at 4K (measured on pixel noise, PNG's worst
# case), against a minute of steps.
CHECKPOINT_SECONDS = 60.0
# A job's pace (ProgressEvent.pace) is kept once this many steps after its first are timed: that of
# fewer is noise.
PACE_STEPS = 5
# The server estimates jobs at the pace of one whose picture had at least this many pixels (a 256 px
# one at 16:9): a step's fixed costs weigh more on a smaller picture. On 2 cores a step took 5.75 µs
# a pixel at 128 px, 4.54 at 256 px, 3.94 at 512 px and 3.78 at 768 px, and a 128 × 67 px job's pace
# put the default 512 px painting at 182 s, where it took 103 s.
PACE_PIXELS = 256 * 144


class QueueFull(Exception):
    pass


@dataclass
class Job:
    """One request to paint: what was asked, and how far it got."""

    id: str
    folder: Path
    settings: dict[str, Any]  # Config.to_dict(); kept as a dict so old jobs load whatever Config becomes
    content_name: str  # the uploaded file names, for display only (never used as paths)
    style_names: list[str]
    created: float = field(default_factory=time.time)
    status: str = "queued"
    step: int = 0
    total: int = 0
    elapsed: float = 0.0
    seconds_left: float | None = None  # stylize's estimate at the last step (memory only)
    loss: float | None = None
    points: list[list[float]] = field(default_factory=list)  # [step, loss, content, style] per step
    stop_reason: str | None = None
    error: str | None = None
    size: list[int] | None = None  # [width, height] of the result
    stopped_at: dict[str, int] | None = None  # where a cancelled run stopped (Result.stopped_at): it can resume
    pace: float | None = None  # seconds per pixel of a step, as its run went (see JobManager.estimate)
    finished: float | None = None
    preview: bytes | None = None  # the latest preview PNG (memory only)
    preview_step: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    # Cancelled while it prepared (memory only): its one step would be the unpainted start, kept as no result.
    cancelled_unpainted: bool = False

    @property
    def content_path(self) -> Path:
        return self.folder / "content"

    @property
    def style_paths(self) -> list[Path]:
        return [self.folder / f"style-{i}" for i in range(len(self.style_names))]

    @property
    def result_path(self) -> Path:
        return self.folder / "result.png"

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.png"

    @property
    def has_result(self) -> bool:
        return self.status in ("done", "cancelled") and self.result_path.is_file()

    @property
    def resumable(self) -> bool:
        """Cancelled part way, with its picture: it can go on from where it stopped."""
        return self.status == "cancelled" and self.stopped_at is not None and self.has_result

    def eta(self) -> float | None:
        """Seconds left while it runs (``ProgressEvent.seconds_left``: a step at a large size counts for more)."""
        return self.seconds_left if self.status == "running" else None

    def summary(self) -> dict[str, Any]:
        """The job as the API shows it (without the loss history)."""
        base = f"/api/jobs/{self.id}"
        return {
            "id": self.id, "status": self.status, "created": self.created, "finished": self.finished,
            "content_name": self.content_name, "style_names": self.style_names, "config": self.settings,
            "step": self.step, "total": self.total, "elapsed": round(self.elapsed, 3), "eta": self.eta(),
            "loss": self.loss, "stop_reason": self.stop_reason, "error": self.error, "size": self.size,
            "has_result": self.has_result, "resumable": self.resumable, "preview_step": self.preview_step,
            "urls": {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel", "resume": f"{base}/resume",
                     "preview": f"{base}/preview.png", "result": f"{base}/result.png"},
        }

    def to_json(self) -> dict[str, Any]:
        keys = ("id", "status", "created", "finished", "content_name", "style_names", "settings", "step",
                "total", "elapsed", "loss", "points", "stop_reason", "error", "size", "stopped_at", "pace")
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> Job:
        known = {k: data[k] for k in _FIELD_TYPES if k in data}
        for key, value in known.items():
            if not isinstance(value, _FIELD_TYPES[key]) or isinstance(value, bool):
                raise TypeError(f"{key} is {value!r}")
        return cls(id=folder.name, folder=folder, settings=dict(data["settings"]),
                   content_name=str(data["content_name"]), style_names=[str(s) for s in data["style_names"]],
                   **known)

    def save(self) -> None:
        """Write job.json atomically (a crash leaves the old file or the new one, never half)."""
        write_atomic((self.folder / "job.json", lambda f: f.write(json.dumps(self.to_json()).encode("utf-8"))))


class JobManager:
    """Jobs by id, a FIFO queue and the worker threads that run it, ``workers`` jobs at a time."""

    def __init__(self, data_dir: str | os.PathLike, *, workers: int = 1, preview_every: int = 5,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS) -> None:
        self.jobs_dir = Path(data_dir) / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.workers, self.preview_every, self.checkpoint_seconds = workers, preview_every, checkpoint_seconds
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._listeners: dict[str, set[Callable[[], None]]] = {}
        self._stopping = threading.Event()
        self.pace: float | None = None  # the last timed job's: see estimate
        self._load()

    # --- Jobs ---

    def _load(self) -> None:
        """Reload the jobs of earlier sessions. One that was still running is marked failed, or, if it
        was to go on from a stopped picture that is still there, cancelled again: it can resume. One that
        was still waiting is cancelled, as the server's Ctrl-C cancels it."""
        for folder in self.jobs_dir.iterdir():
            if not (JOB_ID.fullmatch(folder.name) and (folder / "job.json").is_file()):
                continue
            try:
                job = Job.from_json(json.loads((folder / "job.json").read_text(encoding="utf-8")), folder)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipping job folder %s: %s", folder, e)
                continue
            if job.status not in FINISHED:
                # job.json was last written as it was queued or started, so it holds the stopped run's step
                # and points: the resumed part is lost, the picture it started from (or a checkpoint) is not.
                self._take_checkpoint(job)
                if job.stopped_at and job.result_path.is_file():
                    job.status, job.error = "cancelled", f"{INTERRUPTED}; Resume goes on from where it stopped"
                elif job.status == "queued" and not job.stopped_at:  # it never started: as after a Ctrl-C
                    job.status, job.stop_reason, job.error = "cancelled", "cancelled", STOPPED_WAITING
                else:
                    job.status, job.error = "failed", INTERRUPTED
                job.finished = job.finished or time.time()
                self._save(job)
            elif job.status == "done" and not job.result_path.is_file():
                job.status, job.error = "failed", "its result.png is missing from the data folder"
                log.warning("job %s: %s", job.id, job.error)
            self._drop_uploads(job)  # also those an earlier version kept
            if job.resumable:  # its stopped picture is its preview, as before the restart: the stage shows it
                job.preview_step = job.step
            self.jobs[job.id] = job
        timed = [job for job in self.jobs.values() if job.pace and job.size and math.prod(job.size) >= PACE_PIXELS]
        if timed:
            self.pace = max(timed, key=lambda job: (job.finished or job.created, job.created)).pace

    def estimate(self, config: Config, height: int, width: int) -> float | None:
        """About how many seconds painting a photo of ``height`` × ``width`` with ``config`` takes on this
        server, each step counted by the pixels it computes, at the pace of the last job timed with a
        picture of at least ``PACE_PIXELS`` (the one painting now, else the newest in the data folder);
        None before any such job was timed. Like a job's own time left, it leaves out the first step's
        setup (a second or two)."""
        pace = self.pace
        return pace * painting_work(config, height, width) if pace else None

    @staticmethod
    def _take_checkpoint(job: Job) -> None:
        """The checkpoint of a job that was running when the server died, made its stopped picture."""
        if not job.checkpoint_path.is_file():
            return
        try:
            meta = read_metadata(job.checkpoint_path)
            stopped_at, steps, seconds = meta["stopped_at"], meta["steps"], float(meta["seconds"])
            size = header_size(job.checkpoint_path)
            os.replace(job.checkpoint_path, job.result_path)
        except (ImpastoError, OSError, KeyError, TypeError, ValueError) as e:
            log.warning("job %s: cannot take up its checkpoint: %s", job.id, e)
            return
        job.stopped_at, job.step, job.size, job.elapsed = stopped_at, steps, list(size) if size else None, seconds
        job.points = [point for point in job.points if point[0] <= steps]  # none past the picture kept

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (new, empty) folder."""
        job_id = uuid.uuid4().hex
        folder = self.jobs_dir / job_id
        folder.mkdir()
        return job_id, folder

    def submit(self, job: Job, most_waiting: int | None = None) -> dict[str, Any]:
        """Queue a job whose folder already holds its inputs; QueueFull if ``most_waiting`` jobs
        already wait (checked here too: uploads that arrive together all passed the early check).
        Returns its summary as queued: a worker may take it up as soon as it is in the queue."""
        job.total = job.total or _total_steps(job.settings)
        with self._lock:
            self._check_room(most_waiting)
            self.jobs[job.id] = job
        try:
            job.save()  # raises: the request that made the job is told
        except BaseException:
            with self._lock:
                del self.jobs[job.id]
            raise
        queued = job.summary()
        self._queue.put(job.id)
        return queued

    def resume(self, job: Job, most_waiting: int | None = None) -> dict[str, Any] | None:
        """Queue a cancelled job again, to go on from its picture where it stopped; its summary as
        queued, as ``submit`` returns, or None if it cannot (finished, failed, or cancelled before its
        first step); QueueFull as for ``submit``."""
        with self._lock:
            if not job.resumable:
                return None
            self._check_room(most_waiting)
            job.status, job.stop_reason, job.error, job.finished = "queued", None, None, None
            job.seconds_left = None  # the stopped run's estimate, until its first step
            job.cancel_requested, job.cancelled_unpainted = threading.Event(), False
        self._save(job)
        self._notify(job)
        queued = job.summary()
        self._queue.put(job.id)
        return queued

    def delete(self, job: Job) -> bool:
        """Forget a finished job and remove its folder (False while it is queued or running). A folder
        that cannot be removed (a read-only data folder) raises OSError, the job still listed."""
        with self._lock:
            if job.status not in FINISHED:
                return False
            shutil.rmtree(job.folder)
            del self.jobs[job.id]
        return True

    def _check_room(self, most_waiting: int | None) -> None:
        """QueueFull if ``most_waiting`` jobs already wait (the caller holds the lock)."""
        if most_waiting is not None and sum(j.status == "queued" for j in self.jobs.values()) >= most_waiting:
            raise QueueFull(f"{most_waiting} jobs are already waiting; try again later")

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None (also for anything that is not a well-formed id)."""
        if not JOB_ID.fullmatch(job_id):
            return None
        return self.jobs.get(job_id)

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        with self._lock:
            jobs = list(self.jobs.values())
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def pending(self) -> int:
        return sum(job.status == "queued" for job in self.list())

    def cancel(self, job: Job) -> bool:
        """Stop a queued or running job (a running one keeps its best image). False if already over."""
        with self._lock:
            if job.status in FINISHED:
                return False
            job.cancel_requested.set()
            job.cancelled_unpainted = job.status == "running" and job.step == 0
            if job.status == "queued":
                job.status, job.stop_reason, job.finished = "cancelled", "cancelled", time.time()
                job.error = STOPPED_WAITING if self._stopping.is_set() else None
        if job.status == "cancelled":
            self._save(job)
            self._drop_uploads(job)
        self._notify(job)
        return True

    # --- Listeners (the web layer's Server-Sent Events) ---

    def listen(self, job_id: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from a worker thread) whenever the job changes."""
        with self._lock:
            self._listeners.setdefault(job_id, set()).add(callback)

    def unlisten(self, job_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.get(job_id, set()).discard(callback)

    def _notify(self, job: Job) -> None:
        with self._lock:
            callbacks = list(self._listeners.get(job.id, ()))
        for callback in callbacks:
            callback()

    # --- Workers ---

    def start(self) -> None:
        self._stopping.clear()
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"impasto-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def cancel_all(self) -> None:
        """Cancel every queued and running job (a running one saves its best image): the server stops."""
        self._stopping.set()
        for job in self.list():
            self.cancel(job)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel all jobs and wait for the workers to finish the step they are on."""
        self.cancel_all()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                return
            with self._lock:
                job = self.jobs.get(job_id)
                if job is None or job.status != "queued":  # cancelled while waiting (and maybe deleted)
                    continue
                job.status = "running"
            self._save(job)
            self._notify(job)
            try:
                self._run(job)
            except Exception as e:  # a bug or the machine (out of memory): the job fails, the server lives
                log.exception("job %s failed", job.id)
                self._finish(job, "failed", error=f"unexpected {type(e).__name__}: {e}")

    def _run(self, job: Job) -> None:
        resume = job.result_path if job.stopped_at else None
        checkpointed = time.monotonic()
        first_step: int | None = None  # this run's (a resumed one's is past the stopped part's)

        def on_step(event: ProgressEvent) -> bool:
            nonlocal checkpointed, first_step
            job.step, job.total, job.loss, job.elapsed = event.step, event.total, event.loss, event.elapsed
            job.seconds_left = event.seconds_left
            first_step = first_step or event.step
            if event.pace and event.step - first_step >= PACE_STEPS:
                job.pace = event.pace
                if math.prod(event.image.shape[1:]) >= PACE_PIXELS:
                    self.pace = event.pace
            kinds = loss_kinds(event.losses)
            job.points.append([event.step, event.loss, kinds.get("content", 0.0), kinds.get("style", 0.0)])
            if time.monotonic() - checkpointed >= self.checkpoint_seconds:  # with job.json: its chart and clock
                self._checkpoint(job, event.stopped_here())
                self._save(job)
                checkpointed = time.monotonic()
            if job.preview is None or event.step % self.preview_every == 0 or event.step == event.total:
                job.preview, job.preview_step = _png(event.image), event.step
            self._notify(job)
            return job.cancel_requested.is_set()

        try:
            config = Config.from_saved(job.settings)
            result = stylize(job.content_path, job.style_paths, config, callback=on_step, resume=resume)
        except ImpastoError as e:
            message = _without_folder(str(e), job)
            if resume:  # its picture is still there, only not to be resumed
                job.stopped_at = None
                self._finish(job, "cancelled", stop_reason="cancelled", error=f"cannot resume: {message}")
            else:
                self._finish(job, "failed", error=message)
            return
        if result.steps == 0:
            self._finish(job, "failed", error=f"the run stopped before its first step ({result.stop_reason})")
            return
        if result.stop_reason == "cancelled" and job.cancelled_unpainted and not resume:
            job.step, job.points, job.preview, job.preview_step = 0, [], None, 0
            self._finish(job, "cancelled", stop_reason="cancelled",
                         error=STOPPED_WAITING if self._stopping.is_set() else None)
            return
        try:
            save_image(result.image, job.result_path, metadata=_shared_metadata(result, job))
        except ImpastoError as e:  # the data folder is read-only or full
            self._finish(job, "failed", error=f"cannot write the result: {_without_folder(str(e), job)}")
            return
        job.size, job.stopped_at = [int(result.image.shape[2]), int(result.image.shape[1])], result.stopped_at
        job.preview, job.preview_step = None, job.step
        # "diverged" is done too: the best image before the loss became NaN is still a picture
        status = "cancelled" if result.stop_reason == "cancelled" else "done"
        stopped = status == "cancelled" and self._stopping.is_set()
        self._finish(job, status, stop_reason=result.stop_reason, error=SERVER_STOPPED if stopped else None)

    @staticmethod
    def _checkpoint(job: Job, stopped: Result) -> None:
        try:
            save_image(stopped.image, job.checkpoint_path, metadata=_shared_metadata(stopped, job))
        except ImpastoError as e:  # the data folder is full, say: the painting goes on without
            log.warning("job %s: cannot write a checkpoint: %s", job.id, e)

    def _finish(self, job: Job, status: str, *, stop_reason: str | None = None, error: str | None = None) -> None:
        with contextlib.suppress(OSError):  # its result, if any, is written: the checkpoint is stale
            job.checkpoint_path.unlink(missing_ok=True)
        with self._lock:
            job.status, job.stop_reason, job.error, job.finished = status, stop_reason, error, time.time()
        self._save(job)
        self._drop_uploads(job)
        self._notify(job)

    @staticmethod
    def _drop_uploads(job: Job) -> None:
        """The photo and paintings of a job that ended without a picture: nothing can use them (no Resume,
        no card on the page to delete them from), and they are the data folder's largest files."""
        if job.status in FINISHED and not job.has_result:
            for path in (job.content_path, *job.style_paths):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)

    @staticmethod
    def _save(job: Job) -> None:
        """Write job.json; if the data folder cannot take it (read-only, full), say so in the log and
        go on: the job's state lives in memory, and the workers must keep serving."""
        try:
            job.save()
        except ImpastoError as e:
            log.warning("cannot save job %s: %s", job.id, e)


def _without_folder(message: str, job: Job) -> str:
    """An error message with the job's folder left out of its paths: the page need not see the server's."""
    folder = str(job.folder)
    return message.replace(folder + os.sep, "").replace(repr(folder), "its folder").replace(folder, "its folder")


def _total_steps(settings: dict[str, Any]) -> int:
    return sum(Config.from_saved(settings).steps_per_size())


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", compress_level=1)  # fast: previews are thrown away
    return buffer.getvalue()


def _shared_metadata(result: Result, job: Job) -> dict[str, Any]:
    """A result's metadata with the upload names, not this server's folders: results get shared."""
    metadata = result.metadata()
    metadata["inputs"]["paths"] = {"content": job.content_name, "style": job.style_names}
    return metadata
