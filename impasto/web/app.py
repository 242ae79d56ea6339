"""The HTTP layer: a Starlette app with a JSON API, Server-Sent Events and the static page.

Starlette rather than FastAPI: the API is ten small routes, and Starlette keeps the extra to three
pure-Python packages (no pydantic), while giving direct access to the request stream, which the
upload limit needs. The API is documented in the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import re
import shutil
import threading
import unicodedata
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, QueryParams, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import Config, ConfigError, ImageError, ImpastoError, __version__, read_image
from ..api import check_edges
from ..config import MIN_SIZE, parse_setting
from ..imageio import long_edge_shape, looks_soft
from . import Limits
from .jobs import FINISHED, Job, JobManager, QueueFull

# The settings the page offers, in order, with how to show them. Every other field of Config keeps
# its default: a request can never name a file (weights, init) or a device. A new setting (style
# blend, say) is one entry here; the page builds its form from GET /api/settings. Not the seed: it
# seeds only a noise start, which the page does not offer, so it would change nothing.
FORM_SETTINGS: dict[str, dict[str, Any]] = {
    "style_weight": {"label": "Style strength", "widget": "log-slider", "min": 1, "max": 10_000},
    "max_size": {"label": "Size", "unit": "px", "widget": "number", "min": MIN_SIZE},
    "iterations": {"label": "Iterations", "widget": "number", "min": 1},
    # The painting seen larger or smaller, so its strokes come out so on the picture. Up to 2: the
    # painting is then read at 4 times the picture's pixels, which the server's memory can bear.
    "style_scale": {"label": "Brush strokes", "widget": "select", "min": 0.5, "max": 2.0, "help": "the "
                    "painting's strokes as they are, finer or bigger on the picture", "choices": [
        ["0.5", "finer"], ["1", "as painted"], ["1.5", "bigger"], ["2", "much bigger"]]},
    "preserve_color": {"label": "Colours", "widget": "select", "help": "keep the photo's colours: take only "
                       "the painting's brightness, or recolour the painting to the photo's colours first", "choices": [
        ["none", "the painting's"], ["luminance", "the photo's (luminance only)"],
        ["histogram", "the photo's (painting recoloured)"]]},
}
MAX_STYLES = 4  # style images one request may send (blended with Config.style_blend's default)
_ONE_EACH = (f"send one photo, at most {MAX_STYLES} paintings, and each setting at most once "
             f"({', '.join(FORM_SETTINGS)})")
_DECODING = threading.Lock()  # one upload decoded at a time: a 40-megapixel check takes ~1.4 GB
KEEPALIVE_SECONDS = 15  # an SSE comment line this often lets a dead connection be noticed
STATIC = Path(__file__).resolve().parent.parent / "static"  # the page: index.html, app.js, style.css
_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
log = logging.getLogger("impasto.web")


class _TooLarge(Exception):
    pass


def create_app(data_dir: str | Path, *, workers: int = 1, limits: Limits | None = None,
               preview_every: int = 5, hosts: Sequence[str] | None = None) -> Starlette:
    """The web app, with its jobs in ``data_dir`` (created if missing). Workers run while it is served.

    ``hosts``: the only names a request may address the server by (its Host header) besides IP
    addresses, e.g. the loopback names and the machine's; None accepts any."""
    routes = [
        Route("/", _index),
        Route("/api/settings", _settings),
        Route("/api/estimate", _estimate),
        Route("/api/jobs", _list_jobs, methods=["GET"]),
        Route("/api/jobs", _create_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", _get_job, methods=["GET"]),
        Route("/api/jobs/{job_id}", _delete, methods=["DELETE"]),
        Route("/api/jobs/{job_id}/events", _events),
        Route("/api/jobs/{job_id}/cancel", _cancel, methods=["POST"]),
        Route("/api/jobs/{job_id}/resume", _resume, methods=["POST"]),
        Route("/api/jobs/{job_id}/result.png", _result),
        Route("/api/jobs/{job_id}/preview.png", _preview),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=_lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
                    middleware=[Middleware(_FromThisSiteOnly, hosts=hosts)])
    app.state.manager = JobManager(data_dir, workers=workers, preview_every=preview_every)
    app.state.limits = limits or Limits()
    return app


# The routes. Each reads the server's JobManager and Limits from request.app.state.

@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.manager.start()
    try:
        yield
    finally:
        await run_in_threadpool(app.state.manager.stop)


def _job_or_404(request: Request) -> Job:
    job = request.app.state.manager.get(request.path_params["job_id"])
    if job is None:
        raise HTTPException(404, "no such job")
    return job


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _settings(request: Request) -> Response:
    limits = request.app.state.limits
    defaults = _defaults(limits)
    fields = [{"name": name, "type": type(getattr(defaults, name)).__name__, "default": getattr(defaults, name),
               "help": _FIELDS[name].metadata["help"], **_form_settings(limits)[name]}
              for name in FORM_SETTINGS]
    return JSONResponse({"version": __version__, "settings": fields, "max_styles": MAX_STYLES,
                         "limits": dataclasses.asdict(limits)})


async def _estimate(request: Request) -> Response:
    """About how long a job would take: the query gives the photo's ``width`` and ``height`` and the
    form's settings (those left out take their defaults, as for a job)."""
    params, limits = request.query_params, request.app.state.limits
    unknown = sorted(set(params.keys()) - {"width", "height", *FORM_SETTINGS})
    if unknown:
        raise HTTPException(400, f"unknown field {unknown[0]!r}; send width, height and any of "
                                 f"{', '.join(FORM_SETTINGS)}")
    _check_sent_once(params, "send each once")
    width, height = _pixels(params, "width"), _pixels(params, "height")
    if width * height > limits.max_pixels:
        raise HTTPException(400, f"a {width}x{height} photo is more than this server's {limits.max_pixels:,} pixels")
    config = _config(params, limits)
    painted = long_edge_shape(height, width, config.max_size)
    seconds = request.app.state.manager.estimate(config, height, width)
    # three figures: a tiny painting's fraction of a second stays one, a print's minutes lose nothing worth having
    return JSONResponse({"seconds": seconds and float(f"{seconds:.3g}"), "size": [painted[1], painted[0]],
                         "soft": looks_soft(config.max_size, width, height)})


def _check_sent_once(fields: FormData | QueryParams, advice: str, many: frozenset[str] | set[str] = frozenset()
                     ) -> None:
    """A 400 for a field sent more than once (but those of ``many``): a form or a query keeps the last
    of them, so say so rather than guess which was meant."""
    repeated = sorted(key for key in set(fields.keys()) - many if len(fields.getlist(key)) > 1)
    if repeated:
        raise HTTPException(400, f"{repeated[0]} was sent {len(fields.getlist(repeated[0]))} times: {advice}")


def _pixels(params: Mapping[str, str], name: str) -> int:
    """The query's ``name``, a photo's width or height in pixels."""
    text = params.get(name, "")
    if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) < 1:
        raise HTTPException(400, f"{name} must be the photo's {name} in pixels, got {text[:20]!r}")
    return int(text)


async def _list_jobs(request: Request) -> Response:
    return JSONResponse({"jobs": [job.summary() for job in request.app.state.manager.list()]})


async def _get_job(request: Request) -> Response:
    job = _job_or_404(request)
    return JSONResponse({**job.summary(), "points": list(job.points)})


async def _create_job(request: Request) -> Response:
    manager, limits = request.app.state.manager, request.app.state.limits
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limits.max_upload_bytes):
        return _too_large(limits)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(400, "send the images as multipart/form-data (fields 'content' and 'style')")
    if manager.pending() >= limits.max_queued:
        raise HTTPException(429, f"{limits.max_queued} jobs are already waiting; try again later")
    try:
        async with Request(request.scope, _counting_receive(request, limits.max_upload_bytes)).form(
                max_files=MAX_STYLES + 1, max_fields=len(FORM_SETTINGS)) as form:
            queued = await _new_job(form, manager, limits)
    except _TooLarge:
        return _too_large(limits)
    except (OSError, ImpastoError) as e:  # the data folder is read-only or full
        log.warning("cannot store a new job: %s", e)
        raise HTTPException(500, "the server cannot write in its data folder (read-only or full?)") from None
    except HTTPException as e:
        if e.detail.startswith(("Too many files", "Too many fields")):  # Starlette's words, about its counts
            raise HTTPException(400, _ONE_EACH) from None
        raise
    return JSONResponse(queued, status_code=201, headers={"Location": queued["urls"]["self"]})


def _counting_receive(request: Request, most_bytes: int) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The request's receive, raising _TooLarge once the body passes ``most_bytes``: a chunked upload
    sends no Content-Length to check up front."""
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > most_bytes:
            raise _TooLarge
        return message
    return receive


async def _cancel(request: Request) -> Response:
    job = _job_or_404(request)
    if not request.app.state.manager.cancel(job):
        raise HTTPException(409, f"job already {job.status}")
    return JSONResponse(job.summary(), status_code=202)


async def _resume(request: Request) -> Response:
    job = _job_or_404(request)
    try:
        queued = request.app.state.manager.resume(job, most_waiting=request.app.state.limits.max_queued)
    except QueueFull as e:
        raise HTTPException(429, str(e)) from None
    if queued is None:
        raise HTTPException(409, f"job is {job.status}; only a painting stopped part way can resume")
    return JSONResponse(queued, status_code=202)


async def _delete(request: Request) -> Response:
    job = _job_or_404(request)
    try:
        if not request.app.state.manager.delete(job):
            raise HTTPException(409, f"job is {job.status}; cancel it first")
    except OSError as e:
        raise HTTPException(500, f"cannot delete the job's folder ({e.strerror or e})") from None
    return Response(status_code=204)


async def _result(request: Request) -> Response:
    job = _job_or_404(request)
    if not job.has_result:
        raise HTTPException(404, f"job is {job.status} and has no result")
    headers = {"Cache-Control": "no-cache"}
    if request.query_params.get("download", "").lower() in ("1", "true", "yes"):
        # The name in UTF-8 for browsers (RFC 6266), and in ASCII for clients that read no other.
        headers["Content-Disposition"] = (f'attachment; filename="{_download_name(job, ascii_only=True)}"; '
                                          f"filename*=UTF-8''{urllib.parse.quote(_download_name(job))}")
    return FileResponse(job.result_path, media_type="image/png", headers=headers)


async def _preview(request: Request) -> Response:
    job = _job_or_404(request)
    png = job.preview
    if png is not None:
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
    if job.has_result or (job.stopped_at and job.result_path.is_file()):  # resumed: where it stopped
        return FileResponse(job.result_path, media_type="image/png", headers={"Cache-Control": "no-cache"})
    raise HTTPException(404, f"job is {job.status} and has no preview yet")


async def _events(request: Request) -> Response:
    job = _job_or_404(request)
    return StreamingResponse(_event_stream(job, request.app.state.manager), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class _SettingError(HTTPException):
    """A 400 about a setting, which the page marks (not the image the message names)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(400, message)
        self.setting = setting


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    setting = {"setting": exc.setting} if isinstance(exc, _SettingError) else {}
    return JSONResponse({"error": exc.detail, **setting}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:  # a bug: JSON like the rest
    return JSONResponse({"error": f"unexpected {type(exc).__name__} (see the server's log)"}, status_code=500)


class _FromThisSiteOnly:
    """Refuse what another web site could make the user's browser send here. A Host header that is
    neither one of ``hosts`` nor an IP address: a page on evil.example whose name is made to resolve
    to this machine (DNS rebinding) could otherwise read every result. A POST (or DELETE) from a page
    of another origin: a multipart form needs no CORS preflight, so any site could start or cancel jobs. Scripts
    (curl) send no Origin. Every response also forbids framing and type sniffing."""

    def __init__(self, app: Any, hosts: Sequence[str] | None) -> None:
        self.app, self.hosts = app, None if hosts is None else frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":  # no framing by other sites, no type sniffing
                message["headers"] = [*message.get("headers", []), *_SAFETY_HEADERS]
            await send(message)

        problem = self._problem(scope)
        if problem:
            await JSONResponse({"error": problem}, status_code=403)(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    def _problem(self, scope: dict[str, Any]) -> str | None:
        """Why a request must be refused, or None."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host, origin = headers.get("host", ""), headers.get("origin")
        name = _host_name(host).lower()  # browsers send host names in lower case
        if self.hosts is not None and name not in self.hosts and not _is_address(name):
            return f"this server answers to {', '.join(sorted(self.hosts))}, not {host!r}"
        if scope["method"] not in ("GET", "HEAD") and origin is not None and _netloc(origin) != host:
            return f"a page from {origin} may not send requests to this server"
        return None


_SAFETY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                   (b"x-content-type-options", b"nosniff")]


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc
    except ValueError:  # not a URL (http://[::1): nobody's origin
        return None


def _is_address(name: str) -> bool:
    """An IP address, not a name: a browser that sends it was pointed at it, no DNS involved. Not
    with an IPv6 zone ("fe80::1%eth0"), which may hold any text and which browsers never send."""
    if "%" in name:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_name(host: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    if host.startswith("["):
        return host[1:host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _new_job(form: FormData, manager: JobManager, limits: Limits) -> dict[str, Any]:
    """Validate a submitted form, store its images in a new job folder, and queue the job: its summary
    as queued."""
    unknown = sorted(set(form.keys()) - {"content", "style", *FORM_SETTINGS})
    if unknown:
        raise HTTPException(400, f"unknown setting {unknown[0]!r}; the settings are {', '.join(FORM_SETTINGS)}")
    _check_sent_once(form, _ONE_EACH, many={"style"})
    content = form.get("content")
    styles = form.getlist("style")
    if not isinstance(content, UploadFile):
        raise HTTPException(400, "no photo: send it as the file field 'content'")
    if not styles or not all(isinstance(s, UploadFile) for s in styles):
        raise HTTPException(400, "no painting: send it as the file field 'style'")
    config = _config(form, limits)
    job_id, folder = manager.new_folder()
    try:
        job = Job(job_id, folder, config.to_dict(), _display_name(content.filename, "photo"),
                  [_display_name(s.filename, "painting") for s in styles])
        uploads = [(content, job.content_path, "photo"), *((s, p, "painting") for s, p in zip(styles, job.style_paths))]
        shapes = []  # (label, (H, W)) of the photo, then of each painting
        for upload, path, what in uploads:
            label = f"{what} {_display_name(upload.filename, what)!r}"
            shapes.append((label, await _store_image(upload, path, label, limits)))
        try:  # a photo too small for max_size would fail in the queue: refuse it now
            check_edges(shapes[0][1], shapes[0][0], dict(shapes[1:]), config.painted_sizes(), config, "Size",
                        limits.max_size)
        except ImageError as e:  # its advice names the page's fields; the image is fine, the Size is not
            raise _SettingError(str(e).replace("style_scale", "Brush strokes"), "max_size") from None
        try:
            return manager.submit(job, most_waiting=limits.max_queued)
        except QueueFull as e:
            raise HTTPException(429, str(e)) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _config(form: Mapping[str, Any], limits: Limits) -> Config:
    """The Config of a request: the defaults within this server's limits, with the settings the form
    (or the query) gives."""
    values: dict[str, Any] = {}
    for name in FORM_SETTINGS:
        raw = form.get(name)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            raise HTTPException(400, f"{name} must be a value, not a file")
        try:
            values[name] = parse_setting(name, raw)  # as the command line reads it
        except ConfigError as e:  # it quotes the text: not all of a long one
            text = raw.strip()
            raise HTTPException(400, f"{name}: {str(e).replace(repr(text), repr(text[:40] + '…'))}"
                                if len(text) > 40 else f"{name}: {e}") from None
    try:
        config = _defaults(limits).replace(**values)
    except ConfigError as e:
        raise HTTPException(400, str(e)) from None
    for name, view in _form_settings(limits).items():
        value, unit = getattr(config, name), f" {view['unit']}" if "unit" in view else ""
        if "max" in view and value > view["max"]:
            raise HTTPException(400, f"{name} {value} is above this server's limit of {view['max']}{unit}")
        if "min" in view and value < view["min"]:
            raise HTTPException(400, f"{name} {value} is below this server's minimum of {view['min']}{unit}")
    return config


def _form_settings(limits: Limits) -> dict[str, dict[str, Any]]:
    """FORM_SETTINGS with this server's limits on max_size and iterations."""
    return {**FORM_SETTINGS, "max_size": {**FORM_SETTINGS["max_size"], "max": limits.max_size},
            "iterations": {**FORM_SETTINGS["iterations"], "max": limits.max_iterations}}


def _defaults(limits: Limits) -> Config:
    """The settings of a job that sends none: Config's defaults, within this server's limits."""
    defaults = Config()
    return defaults.replace(max_size=min(defaults.max_size, limits.max_size),
                            iterations=min(defaults.iterations, limits.max_iterations))


async def _store_image(upload: UploadFile, path: Path, label: str, limits: Limits) -> tuple[int, int]:
    """Write an upload to ``path`` and check that it decodes as an image (its name and type are not
    trusted); its (H, W)."""
    data = await upload.read()
    if not data:
        raise HTTPException(400, f"{label} is empty")
    await run_in_threadpool(path.write_bytes, data)
    try:
        return await run_in_threadpool(_check_image, path, limits.max_pixels)
    except ImageError as e:
        raise HTTPException(400, str(e).replace(str(path), label)) from None


def _check_image(path: Path, max_pixels: int) -> tuple[int, int]:
    with _DECODING:
        return tuple(read_image(path, max_pixels=max_pixels).shape[1:])


async def _event_stream(job: Job, manager: JobManager) -> AsyncIterator[str]:
    """Server-Sent Events: the job's state whenever it changes, new loss points only, until it ends.

    A worker may report many steps between two sends; they are coalesced into one message, so a
    slow client never makes the server queue up messages.
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:  # called from a worker thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
            loop.call_soon_threadsafe(wake.set)

    manager.listen(job.id, notify)
    sent = 0
    try:
        while True:
            wake.clear()
            finished = job.status in FINISHED
            points = job.points[sent:]
            data = {**job.summary(), "points_from": sent, "points": points}
            sent += len(points)
            yield f"event: {'done' if finished else 'progress'}\ndata: {json.dumps(data)}\n\n"
            if finished:
                return
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
                    break
                except TimeoutError:
                    yield ": keepalive\n\n"
    finally:
        manager.unlisten(job.id, notify)


def _too_large(limits: Limits) -> Response:
    mb = limits.max_upload_bytes / 2**20
    return JSONResponse({"error": f"upload too large: at most {mb:.3g} MB per request"}, status_code=413,
                        headers={"Connection": "close"})


def _display_name(filename: str | None, fallback: str) -> str:
    """An upload's file name for display: its last path part, printable, at most 80 characters. Browsers
    send a double quote in it as %22 (and line breaks as %0A, %0D): as typed, the name is shown and
    recorded, and --rerun finds the photo by it."""
    filename = filename or ""
    for sent, typed in (("%22", '"'), ("%0A", "\n"), ("%0D", "\r")):
        filename = filename.replace(sent, typed)
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:80] or fallback


def _download_name(job: Job, ascii_only: bool = False) -> str:
    """``impasto-<photo>-<painting>-<id>.png``, letters, digits, - and _ only (in ASCII: "Brücke" as
    "Brucke"), for Content-Disposition."""
    def stem(name: str) -> str:
        text = Path(name).stem
        if ascii_only:
            text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[^\w-]+", "", text)[:30] or "image"
    return f"impasto-{stem(job.content_name)}-{stem(job.style_names[0])}-{job.id[:8]}.png"
