"""The command line's runs, once its arguments parse: the jobs of ``jobs.py``, each painted with a
progress bar, saved (or rescued elsewhere), with Ctrl-C, SIGTERM and SIGHUP keeping the best image
so far. ``cli.main`` imports this module only after parsing, so that --help, --version and usage
errors answer without loading torch.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .api import painting_work, pixels_per_step, planned_memory, size_for_edge, stylize
from .device import native_bfloat16, resolve_device
from .result import Result
from .resume import ResumePoint, resume_point
from .cli import EXIT_FAILED, EXIT_OK, as_typed, config_to_toml, one_line, say, say_error
from .config import Config, printed_length
from .errors import AGAIN, EXIT_SIGNAL, NOTHING_WRITTEN, ImageError, ImpastoError, Interrupted
from .imageio import frame_count, header_size, looks_soft, save_image
from .jobs import Job, Plan, few_names, output_run, plan, run_of, snapshot_path, snapshot_step
from .memory import GB, MemoryPlan
from .optimize import ProgressEvent
from .plot import loss_kinds, plot_losses
from .vgg import smallest_edge


def run(args: argparse.Namespace) -> int:
    """Carry out parsed arguments; ImpastoError for bad input (the caller reports it)."""
    the_plan = plan(args)
    if args.print_config:
        _print_config(the_plan.config)
        return EXIT_OK
    _say_device(the_plan.config, args.quiet)
    if not args.quiet:
        _say_if_paintings_enlarged(the_plan.styles, max((job.config for job in the_plan.jobs),
                                                        key=lambda config: config.max_size))
    if args.dry_run:
        return _dry_run(args, the_plan)
    # A resumed run's steps go on from the stopped run's (--continue's too): so does its log, when it is the same file
    appends = args.resume or args.continue_run
    log = _Log(args.log_json, "a" if appends else "w") if args.log_json else None
    clock = _BatchClock([_work_to_paint(args, job, the_plan) for job in the_plan.jobs]) if the_plan.batch else None
    outcomes: list[str] = []
    started = time.monotonic()
    try:
        with Interrupts(say=not args.quiet) as interrupts:
            for index, job in enumerate(the_plan.jobs):
                interrupts.painting = False  # until this photo's first step: a signal now leaves it unpainted
                try:
                    outcome = _paint_or_skip(args, the_plan, index, job, log, interrupts, clock)
                except Interrupted as exc:  # a second signal: quit at once, naming the photos left unpainted
                    left = the_plan.jobs[index + exc.after_writing:]
                    if the_plan.batch and left:
                        exc.args = (f"{exc}; {_not_painted(left)}",)
                    raise
                except ImpastoError as exc:
                    if not the_plan.batch:
                        raise
                    outcome = "failed"
                    _say_failed(job, exc)
                outcomes.append(outcome)
                if interrupts.signum is not None:
                    _say_stopped(interrupts.signum, the_plan, the_plan.jobs[index + (outcome != "left"):])
                    return EXIT_SIGNAL[interrupts.signum]
    finally:
        if log:
            with contextlib.suppress(OSError):  # its failure was reported at the step it happened
                log.close()
    failed = outcomes.count("failed")
    if the_plan.batch and (failed or not args.quiet):
        say(_batch_summary(outcomes, time.monotonic() - started))
    return EXIT_FAILED if failed else EXIT_OK


def _batch_summary(outcomes: list[str], seconds: float) -> str:
    """A finished batch in a line: "2 of 3 photos failed; 1 painted in 1 min 12 s, 1 already painted"."""
    painted, skipped, failed = (outcomes.count(outcome) for outcome in ("painted", "skipped", "failed"))
    done = []
    if painted:
        done.append(f"{painted} painted in {_duration(seconds)}")
    if skipped:
        done.append(f"{skipped} already painted (--continue)")
    if failed:
        return f"{failed} of {len(outcomes)} photos failed" + (f"; {', '.join(done)}" if done else "")
    count, _, rest = ", ".join(done).partition(" ")
    return f"{count} photo{'s' * (int(count) > 1)} {rest}"


def _duration(seconds: float) -> str:
    """0.04 s, 42.3 s, 4 min 12 s or 1 h 4 min (a tiny painting's steps are not "0.0 s")."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes = round(seconds) // 60
    if minutes < 60:
        return f"{minutes} min {round(seconds) % 60} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _dry_run(args: argparse.Namespace, the_plan: Plan) -> int:
    """--dry-run: a line for each photo, on stdout, with what painting it would do and about how long
    it would take here (or why it would be skipped or fail), its images read and checked as painting
    them would; nothing is painted or written. The time is counted at this machine's pace, timed
    from steps of the first photo to paint. A photo that would fail fails a single run as
    painting it would; a batch's goes on."""
    failed, seconds, paces = 0, 0.0, []

    def pace(job: Job, shape: tuple[int, int]) -> float:  # this machine's, timed on the first photo to paint
        if not paces:
            paces.append(_seconds_per_pixel(job, the_plan, shape))
        return paces[0]

    for job in the_plan.jobs:
        if not args.quiet:  # as its run would say
            _say_if_enlarged(job.content, job.config)
        try:
            planned, job_seconds = _planned(args, job, the_plan, pace)
        except ImpastoError as exc:
            if not the_plan.batch:
                raise type(exc)(as_typed(str(exc))) from None
            failed, planned, job_seconds = failed + 1, f"would fail: {as_typed(str(exc))}", 0.0
        seconds += job_seconds
        print(one_line(f"{job.content} -> {job.output}: {planned}"), flush=True)
    if failed or not args.quiet:
        in_all = f"; about {_duration(seconds)} of painting in all" if the_plan.batch and seconds else ""
        would_fail = f"; {failed} of {len(the_plan.jobs)} photos would fail" if failed else ""
        say(f"dry run: nothing painted or written{in_all}{would_fail}")
    return EXIT_FAILED if failed else EXIT_OK


def _planned(args: argparse.Namespace, job: Job, the_plan: Plan, pace: Callable[[Job, tuple[int, int]], float]
             ) -> tuple[str, float]:
    """What painting ``job`` would do, and about how long it would take at ``pace`` (seconds per pixel
    of a step, timed on a job): "512×384 px; one size, 100 steps at most, about 1 min 10 s on this
    machine; about 1.0 GB of memory". Nothing and 0 s for a photo --continue skips."""
    finished, resume = _what_is_left(args, job, the_plan)
    if finished:
        return "already painted with these settings (--continue skips it)", 0.0
    memory, shape = planned_memory(job.content, the_plan.styles, job.config)
    point = resume_point(resume, job.config) if resume else None
    seconds = _painting_seconds(job.config, shape, memory, pace(job, shape), point)
    sizes = job.config.painted_sizes()
    in_sizes = f"{len(sizes)} sizes ({', '.join(map(str, sizes))} px)" if len(sizes) > 1 else "one size"
    steps = point.total if point else sum(job.config.steps_per_size())
    going_on = f"; goes on from {resume} after step {point.steps}" if point else ""
    return (f"{shape[1]}×{shape[0]} px{_print_size(job.config, shape[1], shape[0])}; {in_sizes}, "
            f"{steps} step{'s' if steps != 1 else ''} at most, about {_duration(seconds)} on this machine; "
            f"about {memory.estimate / GB:.1f} GB of memory{_squeezed(memory.checkpointed, memory.keeps_freed)}"
            f"{going_on}"), seconds


def _painting_seconds(config: Config, shape: tuple[int, int], memory: MemoryPlan, pace: float,
                      point: ResumePoint | None = None) -> float:
    """About how long painting a photo of ``shape`` (height, width) with ``config`` takes at ``pace``
    seconds per pixel of a step, in the way ``memory`` fits (from ``point``, for a stopped run)."""
    steps = config.steps_per_size()
    if point:  # what is left: the rest of the size it stopped at, and the sizes after it
        steps = [0] * point.size_index + [steps[point.size_index] - point.steps_at_size] + steps[point.size_index + 1:]
    return pace * memory.slowdown * painting_work(config, *shape, steps)


def _seconds_per_pixel(job: Job, the_plan: Plan, shape: tuple[int, int]) -> float:
    """This machine's pace, in seconds per pixel of a step: the median of five steps of ``job`` (its
    painting's ``shape``, H × W) at its first size (at most 512 px, a few seconds whatever the print,
    unless a photo as narrow as a strip is too narrow there), after a first whose time also holds loading
    the model and the targets (the median, as a shared machine can make one step much slower than the rest)."""
    narrowest = size_for_edge(shape, smallest_edge(job.config.layers))
    trial = job.config.replace(max_size=min(job.config.painted_sizes()[0], max(512, narrowest)), iterations=6,
                               tolerance=0.0)
    elapsed: list[float] = []
    result = stylize(job.content, the_plan.styles, trial, callback=lambda event: elapsed.append(event.elapsed))
    step = statistics.median(later - earlier for earlier, later in zip(elapsed, elapsed[1:]))
    return step / pixels_per_step(trial, *result.image.shape[1:])[0]


def _print_config(config: Config) -> None:
    """--print-config: the settings as TOML, in UTF-8 whatever the console's code page."""
    text, binary = config_to_toml(config), getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text stream put in place of stdout: it takes text
        print(text, end="")
        return
    sys.stdout.flush()
    binary.write(text.encode("utf-8"))
    binary.flush()


def _paint_or_skip(args: argparse.Namespace, the_plan: Plan, index: int, job: Job, log: _Log | None,
                   interrupts: "Interrupts", clock: "_BatchClock | None") -> str:
    """Paint photo number ``index`` (with --continue, only what is left of it): "painted", "skipped"
    (painted already), or "left" unpainted by a signal before its first step."""
    finished, resume = _what_is_left(args, job, the_plan)
    if finished:
        if not args.quiet:
            say(f"{job.output} is already painted with these settings; skipped (--continue)")
        return "skipped"
    label = one_line(f"[{index + 1}/{len(the_plan.jobs)}] {Path(job.content).name}") if the_plan.batch else ""
    batch_left = functools.partial(clock.seconds_left, index) if clock else None
    return "painted" if _paint(args, the_plan, job, label, log, interrupts, resume, batch_left) else "left"


def _say_failed(job: Job, exc: ImpastoError) -> None:
    """A batch's photo that failed, named, and whether its painting was skipped or kept elsewhere."""
    photo = "" if str(job.content) in str(exc) else f"photo {job.content}"  # a mask's error, say
    skipped = "" if isinstance(exc, Unsaved) else "skipped"  # painted, and kept elsewhere
    said = ", ".join(filter(None, (photo, skipped)))
    say_error(f"{exc}{f' ({said})' if said else ''}")


def _say_stopped(signum: int, the_plan: Plan, left: list[Job]) -> None:
    """A run stopped by a signal: the photos it left unpainted, and how to paint them."""
    name = signal.Signals(signum).name
    if the_plan.batch and left:
        say(f"stopped by {name}; {_not_painted(left)} (the same command with --continue paints what "
            "is left)")
    elif left:
        say(f"stopped by {name} {NOTHING_WRITTEN}")


def _not_painted(jobs: list[Job]) -> str:
    names = [Path(job.content).name for job in jobs]
    return f"{len(names)} photo{'s' if len(names) > 1 else ''} not painted: {few_names(names)}"


def _what_is_left(args: argparse.Namespace, job: Job, the_plan: Plan) -> tuple[bool, Any]:
    """Whether ``job`` is painted already, and if not, the stopped picture to go on from (None: none).
    Without --continue: not painted, and --resume's picture, if given. With it: painted when the
    output is already its painting with these settings and inputs; else the picture furthest along,
    that run stopped part way in the output, or one of its --save-every snapshots (all that is left
    of a run killed outright)."""
    if not args.continue_run:
        return False, args.resume
    inputs, found = output_run(job, the_plan)
    if found.state == "finished":
        return True, None
    if found.state == "stopped elsewise" and not args.quiet:  # a typo in a setting would lose a long print
        say(f"note: {job.output} was stopped part way with {as_typed(found.why)}; replacing it")
    folder = snapshot_path(args, job, 0).parent
    snapshots = [path for path in (folder.iterdir() if folder.is_dir() else [])
                 if snapshot_step(path.name, job.output.stem) is not None]
    stopped = [(found.steps, job.output)] if found.state == "stopped" else []
    for path in snapshots:
        snapshot = run_of(path, job.config, inputs)
        if snapshot.state == "stopped":
            stopped.append((snapshot.steps, path))
    return False, max(stopped, key=lambda pair: pair[0])[1] if stopped else None


def _paint(args: argparse.Namespace, the_plan: Plan, job: Job, label: str, log: _Log | None,
           interrupts: "Interrupts", resume: Any,
           batch_left: Callable[[float, float], float | None] | None) -> bool:
    """Paint one photo (going on from the stopped picture ``resume``, if not None) and write its image,
    plot and intermediate saves; False when a signal came before its first step was made, and nothing
    was written (its output, if any, left as it was)."""
    if not args.quiet:
        _say_if_enlarged(job.content, job.config)
    progress = Progress(args, job, label, log, interrupts, resume, batch_left)
    try:
        try:
            result = stylize(job.content, the_plan.styles, job.config, callback=progress, resume=resume)
        except ImpastoError as exc:  # its advice names settings as the command line spells them
            renamed = type(exc)(as_typed(str(exc)))
            if hasattr(exc, "result"):
                renamed.result = exc.result
            raise renamed from None
        finally:
            progress.close()
    except Exception as exc:  # a failure mid-run (out of memory, say) carries the best image so far
        stopped = getattr(exc, "result", None)
        if stopped is not None and stopped.history:  # steps made in this call (not only a resumed run's)
            try:
                with interrupts.hold():  # the failure is what gets reported, a second signal or not
                    path, problem = _save_or_rescue(stopped, job.output)
                kept = _kept(stopped, path, bool(problem), args, job)
                say(f"{problem + '; ' if problem else ''}{kept}")
            except Unsaved as lost:
                say_error(str(lost))
        raise
    if progress.stopped_unpainted:  # a picture of one step, perhaps over a finished one: not worth it
        return False
    if resume is not None and not result.history and not args.quiet:  # stopped on its last step: no event said so
        say(f"{resume} had no steps left to paint; finishing it")
    with interrupts.hold():
        path, problem = _save_or_rescue(result, job.output)
    if problem:
        message = f"{problem}; {_kept(result, path, True, args, job)}"
        interrupts.abort_if_pending(message)
        if interrupts.signum is None:
            raise Unsaved(message)
        say_error(message)  # the run stopped as asked: exit as a signal says
        return True
    try:
        interrupts.abort_if_pending(_kept(result, path, False, args, job))
        _plot_and_report(args, the_plan, job, result, path, interrupts)
    except Interrupted as exc:  # the picture is written all the same: it is not among those left unpainted
        if not exc.after_writing:  # a second signal during the plot or the report
            exc.args, exc.after_writing = (f"interrupted again; {_kept(result, path, False, args, job)}",), True
        raise
    return True


def _plot_and_report(args: argparse.Namespace, the_plan: Plan, job: Job, result: Result, path: Path,
                     interrupts: "Interrupts") -> None:
    """Once a photo's painting is written: its --plot, and what was written, how and why it stopped."""
    if job.plot:
        history = result.history
        if result.resumed_from and args.log_json and history:  # the part before the stop, from the log
            logged = _logged_rows(args.log_json, _logged_input(job), os.path.abspath(job.output), history[0]["step"])
            history = logged + history
        plot_losses(history, job.plot, job.config.sizes(), title=f"{path.name}: loss per step")
    if not args.quiet:
        squeezed = _squeezed(result.checkpointed, result.keeps_freed)
        reason = result.stop_reason
        if interrupts.signum is not None:
            signal_name = signal.Signals(interrupts.signum).name
            reason = (f"{signal_name}: the best image so far" if reason == "cancelled"
                      else f"{reason}; {signal_name} came after the last step")
        timing = f"{result.timings['total']:.1f} s"
        if result.resumed_from:
            timing += f" resumed, {result.timings['total'] + result.resumed_from['seconds']:.1f} s in all"
        steps = f"{result.steps} step{'s' if result.steps != 1 else ''}"
        _, height, width = result.image.shape
        printed = _print_size(result.config, width, height)
        print(one_line(f"wrote {path}{printed} ({steps}, {timing}, stopped by {reason}{squeezed})"), file=sys.stderr)
        if result.stopped_at:
            say(f"to go on where it stopped: {_resume_command(path, args, job)}")


def _squeezed(checkpointed: bool, keeps_freed: bool) -> str:
    """How a run fits in memory, when it is not the fastest way."""
    if checkpointed:
        return ", activations recomputed to fit in memory"
    return "" if keeps_freed else ", freed memory given back at every step to fit in memory"


def _print_size(config: Config, width: int, height: int) -> str:
    """", a 42.0 × 31.5 cm (16.5 × 12.4 in) print at 300 dpi" for a picture of ``config`` with a dpi; else ""."""
    dpi = config.dpi
    if dpi is None:
        return ""
    inches = [width / dpi, height / dpi]
    return (f", a {inches[0] * 2.54:.1f} × {inches[1] * 2.54:.1f} cm ({inches[0]:.1f} × {inches[1]:.1f} in) "
            f"print at {dpi} dpi")


def _logged_input(job: Job) -> str:
    """How --log-json names a photo: its absolute path (a --resume of the run reads the path from the
    metadata, and logs the same name)."""
    return os.path.abspath(job.content) if isinstance(job.content, (str, os.PathLike)) else "<image>"


def _logged_rows(log: str, content: str, output: str, before: int) -> list[dict[str, float]]:
    """The history rows that --log-json recorded for ``content`` painted into ``output`` before step
    ``before``, so that a resumed run's plot draws the whole run; none where the log cannot be read
    (missing, or not text), and the plot draws only the resumed part."""
    rows: dict[int, dict[str, float]] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(log).read_text(encoding="utf-8").splitlines():
            record = _logged_record(line, content, output)
            with contextlib.suppress(TypeError, KeyError):  # a record of ours that was edited: left out
                if record is not None and record["step"] < before:
                    rows[record["step"]] = {"step": record["step"], "scale": record["scale"], "loss": record["loss"],
                                            **record["terms"]}
    return [rows[step] for step in sorted(rows)]


def _logged_record(line: str, content: str, output: str) -> dict[str, Any] | None:
    """A --log-json line's record, if it is one of a run painting ``content`` into ``output``."""
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict) and record.get("input") == content and record.get("output") == output:
            return record
    return None


def _kept(result: Result, path: Path, instead: bool, args: argparse.Namespace, job: Job) -> str:
    """Where ``result`` was kept (``instead`` of its output), and for a stopped run how to go on."""
    what = f"the best image so far (step {result.image_step or result.steps})" if result.stopped_at else "the painting"
    kept = f"{what} is kept in {path}{' instead' if instead else ''}"
    return kept + (f"; to go on from it: {_resume_command(path, args, job)}" if result.stopped_at else "")


def _resume_command(path: Path, args: argparse.Namespace, job: Job) -> str:
    """The command that resumes the picture stopped in ``path``, with the run's log, plot and snapshots,
    which --resume does not take from the picture."""
    words = ["impasto", "--resume", str(path)]
    if args.log_json:
        words += ["--log-json", args.log_json]
    if job.plot:
        words += ["--plot", str(job.plot)]
    if args.save_every:
        words += ["--save-every", str(args.save_every), *(["--save-dir", args.save_dir] if args.save_dir else [])]
    return shlex.join(words)


def _enlarged(source: Any, edge: float) -> tuple[int, int] | None:
    """(width, height) of an image file that a long edge of ``edge`` px enlarges so much that it looks
    soft; None otherwise, or for an image in memory."""
    size = header_size(source) if isinstance(source, (str, os.PathLike)) else None
    return size if size and looks_soft(edge, *size) else None


def _say_if_animated(source: Any, role: str) -> None:
    """An animated picture is painted from (or in the style of) its first frame: say so."""
    frames = frame_count(source) if isinstance(source, (str, os.PathLike)) else 1
    if frames > 1:
        say(f"note: {source} is animated ({frames} frames): {role}")


def _say_if_enlarged(content: Any, config: Config) -> None:
    """A photo much smaller than the painting comes out soft; say so, and how to paint it at its size
    (when the network can see it at that size); and that only the first frame of an animated one is painted."""
    _say_if_animated(content, "its first frame is painted")
    size = _enlarged(content, config.max_size)
    if size is None:
        return
    printed = f"; {printed_length(max(size), config.dpi)}" if config.dpi else ""
    own = "" if min(size) < smallest_edge(config.layers) else f" (-s {max(size)} paints it at its own size{printed})"
    say(f"note: {content} is {size[0]}x{size[1]} px; painted at {config.max_size} px, "
        f"{config.max_size / max(size):.1f} times larger, it will look soft{own}")


def _say_if_paintings_enlarged(styles: list[Any], config: Config) -> None:
    """A painting is seen at about the picture's size (times style_scale): a small one enlarged much,
    its strokes are blurs, which the result takes on (say so); an animated one, its first frame."""
    seen = config.max_size * config.style_scale  # its long edge, for a painting of the photo's shape
    for style in styles:
        _say_if_animated(style, "its first frame is the painting")
        size = _enlarged(style, seen)
        if size is not None:
            say(f"note: {style} is {size[0]}x{size[1]} px; seen {seen / max(size):.1f} times larger, "
                "its strokes will be blurred (a larger copy of the painting, or a smaller --style-scale, "
                "paints sharper)")


class Unsaved(ImageError):
    """The output could not be written once the painting was done (and maybe not kept elsewhere)."""

    exit_code = EXIT_FAILED  # not bad input: the run worked, the folder failed under it


def _save_or_rescue(result: Result, output: Path) -> tuple[Path, str | None]:
    """Write ``result`` to ``output`` or, if that fails now (a folder made read-only or a disk filled
    during the run), to a new file in the temporary folder: never lose the painting quietly. Returns
    where it went and, if not to ``output``, why; raises Unsaved when it could go nowhere."""
    try:
        return result.save(output), None
    except ImageError as exc:
        problem = str(exc)
    try:
        fd, rescue = tempfile.mkstemp(prefix=f"{output.stem}-", suffix=".png")
        os.close(fd)
    except OSError as exc:
        raise Unsaved(f"{problem}; nor could it be kept in the temporary folder {tempfile.gettempdir()} "
                      f"({exc.strerror or exc}): the picture is lost") from None
    try:
        return result.save(rescue), problem
    except ImpastoError as exc:
        Path(rescue).unlink(missing_ok=True)
        raise Unsaved(f"{problem}; nor could it be kept in {rescue} ({str(exc).removeprefix(rescue + ': ')}): "
                      "the picture is lost") from None


def _say_device(config: Config, quiet: bool) -> None:
    if quiet:
        return
    if config.precision == "bfloat16" and resolve_device(config.device).type == "cpu" and native_bfloat16() is False:
        say("note: this CPU has no bfloat16 arithmetic (AVX-512 BF16 or AMX): --precision bfloat16 is "
            "emulated, many times slower than float32 (40 times on AVX2)")
    if config.device != "auto":
        return
    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        say(f"using the GPU {torch.cuda.get_device_name(device)} ({device})")
    elif device.type != "cpu":
        say(f"using the GPU ({device})")


PLAIN_LINE_SECONDS = 60.0  # the longest a log file goes without a line from a run


def _sized_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that tells its size, where a bar can be redrawn. A pseudo-terminal
    nobody gave a size (``script`` started by a program, some ``docker -t``) says 0 columns and 0 rows, or
    0 rows after ``stty cols 100``, and tqdm draws nothing at all in either."""
    try:
        size = os.get_terminal_size(stream.fileno()) if stream.isatty() else None
        return size is not None and size.columns > 0 and size.lines > 0
    except (OSError, ValueError):  # a stream without a file descriptor (a test's, a notebook's)
        return False


class _Log:
    """The --log-json file, opened at its first record: a run that fails before its first step (a
    misspelt photo, say) leaves the log of an earlier run as it was."""

    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode
        self.file: TextIO | None = None

    def write(self, text: str) -> None:
        if self.file is None:
            self.file = open(self.name, self.mode, encoding="utf-8")
        self.file.write(text)
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class Progress:
    """The callback of one run: progress bar, JSON log, intermediate saves, and stop on a signal."""

    def __init__(self, args: argparse.Namespace, job: Job, label: str, log: _Log | None,
                 interrupts: "Interrupts", resume: Any,
                 batch_left: Callable[[float, float], float | None] | None) -> None:
        self.quiet, self.label, self.log, self.interrupts = args.quiet, label, log, interrupts
        self.batch_left = batch_left  # (elapsed, this photo's seconds left) -> the batch's
        # Absolute: a --resume of the run, which reads the path from the metadata, logs the same name
        self.content = _logged_input(job)
        self.every, self.output = args.save_every, os.path.abspath(job.output)
        self.snapshot = functools.partial(snapshot_path, args, job)
        self.bar: Any = None
        self.resuming = resume  # said at the first step, once stylize has checked all it resumes
        # A log added to (--resume, --continue) may hold steps of an earlier run of this output from the
        # first step on: that run's, replaced, or those a resumed run paints again.
        self.forget_logged = bool(args.resume or args.continue_run)
        self.stopped_unpainted = False  # a signal came before the first step was made
        self.said_at = 0.0  # the run's elapsed seconds at its last plain line (stderr not a terminal)
        self.plain = not _sized_terminal(sys.stderr)  # plain lines, not a redrawn bar

    def __call__(self, event: ProgressEvent) -> bool:
        if not self.interrupts.painting:
            self.interrupts.painting = True
            if self.interrupts.signum is not None:
                self.stopped_unpainted = True
                return True
        kinds = loss_kinds(event.losses)
        height, width = event.image.shape[1:]
        if self.resuming and not self.quiet:
            say(f"resuming {self.resuming} at step {event.step} of {event.total} "
                f"({max(height, width)} px)")
        if self.forget_logged and self.log is not None:
            _forget_logged_steps(self.log, self.content, self.output, event.step)
        self.resuming, self.forget_logged = None, False
        if not self.quiet:
            self._draw(event, kinds, f"{width}x{height}")
        if self.log is not None:
            record = {"input": self.content, "output": self.output, "step": event.step, "total": event.total,
                      "scale": event.scale, "size": [height, width], "loss": event.loss, **kinds, "terms": event.losses,
                      "elapsed": round(event.elapsed, 4),
                      "seconds_left": None if event.seconds_left is None else round(event.seconds_left, 4)}
            try:
                self.log.write(json.dumps(record) + "\n")
            except OSError as exc:  # the painting matters more than its log: go on without it
                self._give_up("--log-json", self.log.name, exc.strerror or exc)
                self.log = None
        if self.every and event.step % self.every == 0:
            try:
                stopped = event.stopped_here()  # a picture --resume goes on from, to the run's output
                save_image(stopped.image, self.snapshot(event.step),
                           metadata={**stopped.metadata(), "snapshot_of": self.output})
            except ImpastoError as exc:
                path = self.snapshot(event.step)
                self._give_up("--save-every", path, str(exc).removeprefix(f"{path}: "))
                self.every = 0
        return self.interrupts.signum is not None  # True stops the run, keeping the best image

    def _give_up(self, option: str, path: Any, reason: Any) -> None:
        if self.bar is not None:
            self.bar.clear()
        say(f"warning: {option}: cannot write {path} ({reason}); going on without it")

    def _draw(self, event: ProgressEvent, kinds: dict[str, float], size: str) -> None:
        from tqdm import tqdm

        terms = (f"{size} " if event.scales > 1 else "") + " ".join(f"{kind} {value:.3g}" for kind, value in kinds.items())
        # stylize's estimate, not tqdm's count of steps: a 2048 px print's last steps take 17 times its first
        seconds_left = 0.0 if event.step == event.total else event.seconds_left  # None: not known yet
        left = f"{tqdm.format_interval(seconds_left)} left, " if seconds_left else ""
        if self.batch_left is not None and seconds_left is not None:  # told at every step: it keeps each photo's time
            in_all = self.batch_left(event.elapsed, seconds_left)
            left += "" if in_all is None else f"{tqdm.format_interval(in_all)} for the batch, "
        if self.plain:  # a log file: a plain line every tenth of the run, not a redrawn bar
            # and at the first step, which says that it started and how long a step takes, and at least
            # once a minute (a print's steps at its last size take a minute each at 4K)
            if (event.step % max(1, event.total // 10) == 0 or event.step in (1, event.total)
                    or event.elapsed - self.said_at >= PLAIN_LINE_SECONDS):
                self.said_at = event.elapsed
                print(f"{self.label + ' ' if self.label else ''}step {event.step}/{event.total}, "
                      f"{event.elapsed:.1f} s, {left}{terms}", file=sys.stderr, flush=True)
            return
        if self.bar is None:
            self.bar = tqdm(total=event.total, desc=self.label or None, unit="step", dynamic_ncols=True,
                            file=sys.stderr, initial=event.step - 1,  # a resumed run starts part way
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
        self.bar.total = event.total  # less once a size has stopped early (tolerance)
        self.bar.set_postfix_str(left + terms, refresh=False)
        self.bar.update(event.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _BatchClock:
    """The time a batch has left: its photo's own, and the photos after it at the pace, per pixel of a
    step, of those painted so far (before the first is done, at the pace the first is taking)."""

    def __init__(self, work: list[int]) -> None:
        self.work = work  # each photo's painting's (api.painting_work), 0 for one not to be painted
        self.seconds: dict[int, float] = {}  # each photo's painting time so far, by its index

    def seconds_left(self, index: int, elapsed: float, left: float) -> float | None:
        """None for the batch's last photo to paint: its own time left is the batch's."""
        self.seconds[index] = elapsed
        if not any(self.work[index + 1:]):
            return None
        done = [i for i in self.seconds if i != index]
        if done and sum(self.work[i] for i in done):
            pace = sum(self.seconds[i] for i in done) / sum(self.work[i] for i in done)
        else:
            pace = (elapsed + left) / max(1, self.work[index])
        return left + pace * sum(self.work[index + 1:])


def _work_to_paint(args: argparse.Namespace, job: Job, the_plan: Plan) -> int:
    """The pixels that the steps of ``job``'s painting compute (``painting_work``), from its photo's
    header; 0 where it cannot be read (painting it will say why) or where --continue will skip it."""
    size = header_size(job.content) if isinstance(job.content, (str, os.PathLike)) else None
    if size is None:
        return 0
    if args.continue_run:
        try:
            if output_run(job, the_plan)[1].state == "finished":
                return 0
        except ImpastoError:  # an input that cannot be read fails the photo when it is painted
            pass
    return painting_work(job.config, *size)  # (width, height): the pixels count alike either way round


def _forget_logged_steps(log: _Log, content: str, output: str, first: int) -> None:
    """Drop from a --log-json file the records of the steps from ``first`` on of a run painting
    ``content`` into ``output``: those of a run that this one replaces, or that a run killed after
    its last snapshot had logged and, resumed from the snapshot, paints again."""
    def repeated(line: str) -> bool:
        record = _logged_record(line, content, output)
        step = record and record.get("step")
        return isinstance(step, int) and step >= first

    try:
        with open(log.name, "r+", encoding="utf-8") as file:
            lines = file.readlines()
            # A last record cut off part way (its run killed as it wrote it) is no JSON: dropped, not
            # glued to the next.
            kept = [line for line in lines if line.endswith("\n") and not repeated(line)]
            if len(kept) < len(lines):  # the log's own handle appends, so it goes on after the kept lines
                file.seek(0)
                file.writelines(kept)
                file.truncate()
    except (OSError, ValueError):  # not text (UnicodeDecodeError): the log's to keep, the painting goes on
        pass


class Interrupts:
    """While active, the first SIGINT or SIGTERM only sets ``signum``: the progress callback then stops
    the run, which keeps the best image so far. A second signal aborts at once, or once the result
    being written is whole (``hold``). Previous handlers are restored on exit; a signal that was
    being ignored stays ignored. ``say``: answer the first Ctrl-C at once, as a step may take a
    minute (at 4K), and a user who sees nothing presses it again and loses the picture."""

    def __init__(self, say: bool = False) -> None:
        self.say = say
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}
        self.holding = False  # while a result is written: a second signal waits until it is
        self.pending: int | None = None  # the exit code of a signal that waited
        self.painting = False  # a photo's first step has been made: a signal now keeps its picture

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_SIGNAL:
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:
                    self.previous[sig] = previous
                    signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self.say and signum == signal.SIGINT:
                doing = ("stopping after this step, keeping the best image so far (Ctrl-C again quits at once, "
                         "without it)" if self.painting else "stopping before the painting starts")
                with contextlib.suppress(OSError, ValueError):  # stderr closed: the stop goes on regardless
                    print(f"\nimpasto: {doing}", file=sys.stderr, flush=True)
            return
        exit_code = EXIT_SIGNAL.get(signum, EXIT_SIGNAL[signal.SIGINT])
        if self.holding:
            self.pending = exit_code
        else:
            raise Interrupted(exit_code, AGAIN)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Write a result (an image and its sidecar) whole: a second signal waits for
        ``abort_if_pending``, which is told what was written."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def abort_if_pending(self, done: str) -> None:
        """Abort for a second signal that came while a result was written, saying what was."""
        if self.pending is not None:
            raise Interrupted(self.pending, f"interrupted; {done}", after_writing=True)

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
