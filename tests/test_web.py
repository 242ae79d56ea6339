"""The web app's JSON API, through Starlette's TestClient on the real app, real worker threads and the
real engine (tiny images, few steps)."""

import dataclasses
import http.client
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ON_GLIBC
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

import impasto  # noqa: E402
from impasto.config import COLOR_MODES  # noqa: E402
from impasto.imageio import read_formats, read_metadata  # noqa: E402
from impasto.web import LOOPBACK_NAMES, Limits, _allowed_hosts, default_data_dir, jobs, main  # noqa: E402
from impasto.web.app import FORM_SETTINGS, _display_name, _download_name, create_app  # noqa: E402
from impasto.web.jobs import Job  # noqa: E402

TINY = {"max_size": "48", "iterations": "4"}
LONG = {"max_size": "48", "iterations": "1000"}  # only ever run until cancelled


@pytest.fixture
def uploads(images):
    """Multipart file fields: golden_gate (979×734) as the photo, Starry Night as the painting."""
    def files(content: bytes | None = None, name: str = "golden_gate.jpg"):
        content = (images / "content/golden_gate.jpg").read_bytes() if content is None else content
        return [("content", (name, content, "image/jpeg")),
                ("style", ("starry_night.jpg", (images / "style/starry_night.jpg").read_bytes(), "image/jpeg"))]
    return files


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(tmp_path)) as c:
        yield c


def events(client, job_id, until=None):
    """Read the job's Server-Sent Events as (event, data) pairs; stop at 'done' or when until(data) holds."""
    received = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                received.append((kind, json.loads(line[6:])))
                if kind == "done" or (until and until(received[-1][1])):
                    break
    return received


def submit(client, files, **settings):
    response = client.post("/api/jobs", files=files, data=settings)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/jobs/{response.json()['id']}"
    return response.json()


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return im.size


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200


def test_settings_describe_the_form(client):
    data = client.get("/api/settings").json()
    assert [s["name"] for s in data["settings"]] == list(FORM_SETTINGS)
    defaults = impasto.Config()
    for spec in data["settings"]:
        assert spec["default"] == getattr(defaults, spec["name"]) and spec["help"]
    by_name = {s["name"]: s for s in data["settings"]}
    assert by_name["max_size"]["max"] == Limits().max_size and by_name["iterations"]["max"] == Limits().max_iterations
    assert data["limits"]["max_upload_bytes"] == Limits().max_upload_bytes and data["max_styles"] == 4
    assert [c[0] for c in by_name["preserve_color"]["choices"]] == list(COLOR_MODES)
    scales = [float(c[0]) for c in by_name["style_scale"]["choices"]]  # every choice within the server's limits
    assert 1.0 in scales and min(scales) == by_name["style_scale"]["min"] and max(scales) == by_name["style_scale"]["max"]


def test_paint_with_progress_events_and_download(client, uploads, tmp_path):
    job = submit(client, uploads(), **TINY, style_weight="200", style_scale="1.5")
    assert job["status"] == "queued" and len(job["id"]) == 32 and job["total"] == 4
    assert job["config"]["max_size"] == 48 and job["config"]["style_weight"] == 200.0
    assert job["config"]["style_scale"] == 1.5
    stream = events(client, job["id"])
    kinds = [kind for kind, _ in stream]
    assert kinds[-1] == "done" and set(kinds[:-1]) <= {"progress"}
    final = stream[-1][1]
    assert final["status"] == "done" and final["has_result"] and final["size"] == [48, 36]
    # The loss points arrive once each, in order, with the offset each message continues from.
    points = []
    for _, data in stream:
        assert data["points_from"] == len(points)
        points += data["points"]
    assert [p[0] for p in points] == list(range(1, final["step"] + 1)) and final["step"] == 4
    assert all(p[1] > 0 for p in points)
    assert [p[1] for p in points] == [p[1] for p in client.get(f"/api/jobs/{job['id']}").json()["points"]]
    assert not client.app.state.manager._listeners[job["id"]]  # an ended stream is no longer told of changes
    # stylize's time left, from its second step while it runs (the stream may skip steps of a run this quick)
    etas = {data["step"]: data["eta"] for kind, data in stream if data["status"] == "running" and data["step"]}
    assert etas.get(1) is None and all(eta >= 0 for step, eta in etas.items() if step > 1) and final["eta"] is None
    running = Job("0" * 32, tmp_path, {}, "a.jpg", ["b.jpg"], status="running", seconds_left=12.5)
    assert running.eta() == 12.5 and dataclasses.replace(running, status="done").eta() is None

    result = client.get(f"/api/jobs/{job['id']}/result.png")
    assert result.status_code == 200 and png_size(result.content) == (48, 36)
    saved = tmp_path / "download.png"
    saved.write_bytes(result.content)
    meta = read_metadata(saved)
    assert meta["config"]["max_size"] == 48 and meta["steps"] == 4 and meta["config"]["style_weight"] == 200.0
    # the uploads' names, not the server's folders: `impasto --rerun` works beside the user's own files
    assert meta["inputs"]["paths"] == {"content": "golden_gate.jpg", "style": ["starry_night.jpg"]}
    download = client.get(f"/api/jobs/{job['id']}/result.png?download=1")
    name = f"impasto-golden_gate-starry_night-{job['id'][:8]}.png"
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"; filename*=UTF-8\'\'{name}'
    assert "content-disposition" not in client.get(f"/api/jobs/{job['id']}/result.png?download=0").headers
    assert client.get(f"/api/jobs/{job['id']}/result.png?download=True").headers["content-disposition"] == (
        download.headers["content-disposition"])
    assert client.get(f"/api/jobs/{job['id']}/preview.png").content == result.content
    listed = client.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["content_name"] == "golden_gate.jpg"


def test_cancel_keeps_the_best_image_and_queued_jobs_never_run(client, uploads):
    running = submit(client, uploads(name="Brücke 星月.jpg"), **LONG)
    waiting = submit(client, uploads(), **TINY)  # one worker: waits behind the long job
    cancelled = client.post(f"/api/jobs/{waiting['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/api/jobs/{waiting['id']}/result.png").status_code == 404  # not the other job's file

    stream = events(client, running["id"], until=lambda data: data["step"] >= 2)
    assert stream[-1][1]["status"] == "running"
    assert client.post(f"/api/jobs/{running['id']}/cancel").status_code == 202
    final = events(client, running["id"])[-1][1]
    assert final["status"] == "cancelled" and final["stop_reason"] == "cancelled"
    assert 2 <= final["step"] < 1000 and final["has_result"]
    assert png_size(client.get(f"/api/jobs/{running['id']}/result.png").content) == (48, 36)
    # a name beyond Latin-1 (which HTTP headers are sent in): ASCII for old clients, UTF-8 for browsers
    download = client.get(f"/api/jobs/{running['id']}/result.png?download=1").headers["content-disposition"]
    assert download == (f'attachment; filename="impasto-Brucke-starry_night-{running["id"][:8]}.png"; '
                        f"filename*=UTF-8''impasto-Br%C3%BCcke%E6%98%9F%E6%9C%88-starry_night-{running['id'][:8]}.png")
    assert client.post(f"/api/jobs/{running['id']}/cancel").status_code == 409
    assert client.get(f"/api/jobs/{waiting['id']}").json()["step"] == 0


def test_a_finished_job_can_be_deleted_with_its_files(client, uploads, tmp_path):
    running = submit(client, uploads(), **LONG)
    assert client.delete(f"/api/jobs/{running['id']}").status_code == 409  # not while it paints
    client.post(f"/api/jobs/{running['id']}/cancel")
    events(client, running["id"])
    assert client.delete(f"/api/jobs/{running['id']}", headers={"origin": "http://evil.example"}).status_code == 403
    assert client.delete(f"/api/jobs/{running['id']}").status_code == 204
    assert not (tmp_path / "jobs" / running["id"]).exists()
    assert client.get(f"/api/jobs/{running['id']}").status_code == 404
    assert client.get("/api/jobs").json()["jobs"] == []
    assert client.delete(f"/api/jobs/{running['id']}").status_code == 404


def test_a_stopped_painting_resumes_where_it_stopped(client, uploads):
    job = submit(client, uploads(), max_size="48", iterations="200")
    events(client, job["id"], until=lambda data: data["step"] >= 2)
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
    stopped = events(client, job["id"])[-1][1]
    assert stopped["status"] == "cancelled" and stopped["resumable"] and stopped["step"] < 200
    resumed = client.post(f"/api/jobs/{job['id']}/resume")
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued"
    assert client.get(f"/api/jobs/{job['id']}/preview.png").status_code == 200  # the picture it goes on from
    final = events(client, job["id"])[-1][1]
    assert final["status"] == "done" and final["step"] > stopped["step"] and not final["resumable"]
    points = client.get(f"/api/jobs/{job['id']}").json()["points"]
    assert [p[0] for p in points] == list(range(1, final["step"] + 1))  # the chart goes on, no step twice
    with Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result.png").content)) as image:
        meta = json.loads(image.info["impasto"])
    assert meta["steps"] == final["step"] and meta["resumed_from"]["steps"] == stopped["step"]
    again = client.post(f"/api/jobs/{job['id']}/resume")
    assert again.status_code == 409 and again.json()["error"] == "job is done; only a painting stopped part way can resume"


@pytest.mark.parametrize("make, message", [
    (lambda good: b"just some text, not a picture\n", "not an image file"),
    (lambda good: good[: len(good) // 2], "truncated or corrupt"),
    (lambda good: b"", "is empty"),
])
def test_bad_image_files_are_rejected_with_a_clear_message(client, uploads, tmp_path, images, make, message):
    good = (images / "content/golden_gate.jpg").read_bytes()
    response = client.post("/api/jobs", files=uploads(make(good), name="notes.png"), data=TINY)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error and "photo 'notes.png'" in error and str(tmp_path) not in error
    assert client.get("/api/jobs").json()["jobs"] == []
    assert list((tmp_path / "jobs").iterdir()) == []  # nothing left behind


def test_decompression_bomb_is_refused_before_decoding(tmp_path, uploads):
    buffer = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buffer, format="PNG")  # 9 megapixels in a few kB
    assert len(buffer.getvalue()) < 100_000
    with TestClient(create_app(tmp_path, limits=Limits(max_pixels=1_000_000))) as client:
        response = client.post("/api/jobs", files=uploads(buffer.getvalue(), name="bomb.png"), data=TINY)
    assert response.status_code == 400
    assert "3000x3000 pixels is more than the limit of 1,000,000" in response.json()["error"]


def test_oversize_uploads_get_413(tmp_path, uploads):
    files = uploads()  # about 400 kB in all
    body = TestClient(create_app(tmp_path / "exact")).build_request("POST", "/api/jobs", files=files, data=TINY)
    content, content_type = body.read(), {"content-type": body.headers["content-type"]}

    def chunks():  # no Content-Length: the body is counted as it arrives
        for i in range(0, len(content), 16_384):
            yield content[i:i + 16_384]

    with TestClient(create_app(tmp_path / "exact", limits=Limits(max_upload_bytes=len(content)))) as client:
        for sent in (content, chunks()):  # a body of exactly the limit is taken
            assert client.post("/api/jobs", content=sent, headers=content_type).status_code == 201
    with TestClient(create_app(tmp_path, limits=Limits(max_upload_bytes=200_000))) as client:
        response = client.post("/api/jobs", files=files, data=TINY)  # with a Content-Length
        assert response.status_code == 413 and "at most 0.191 MB" in response.json()["error"]
        assert client.post("/api/jobs", content=chunks(), headers=content_type).status_code == 413
        assert client.get("/api/jobs").json()["jobs"] == []


@pytest.mark.parametrize("settings, message", [
    ({"max_size": "4096"}, "max_size 4096 is above this server's limit of 1024 px"),
    ({"iterations": "5000"}, "iterations 5000 is above this server's limit of 1000"),
    ({"iterations": "ten"}, "iterations: 'ten' is not a whole number"),
    ({"iterations": "2.5"}, "iterations: '2.5' is not a whole number"),
    ({"iterations": "9" * 50 + "x"}, f"iterations: '{'9' * 40}…' is not a whole number"),
    ({"style_weight": "nan"}, "style_weight must be a finite number"),
    ({"max_size": "8"}, "max_size must be at least 16 pixels"),
    ({"style_weight": "-1"}, "style_weight must not be negative"),
    ({"weights": "/etc/passwd"}, "unknown setting 'weights'"),
    ({"init": "/etc/passwd"}, "unknown setting 'init'"),
    ({"preserve_color": "hsv"}, "preserve_color must be one of none, luminance, histogram, not 'hsv'"),
    ({"style_scale": "4"}, "style_scale 4.0 is above this server's limit of 2.0"),
    ({"style_scale": "0.1"}, "style_scale 0.1 is below this server's minimum of 0.5"),
    ({"masks": "/etc/passwd"}, "unknown setting 'masks'"),
    ({"style_weight": "20000"}, "style_weight 20000.0 is above this server's limit of 10000"),
    ({"style_weight": "0.5"}, "style_weight 0.5 is below this server's minimum of 1"),
    ({"iterations": "-1"}, "iterations must be at least 1, not -1"),
    ({"iterations": "99999999999999999999999"}, "iterations 99999999999999999999999 is above this server's limit"),
    ({"seed": "3"}, "unknown setting 'seed'"),  # it seeds only a noise start, which the page cannot ask for
])
def test_settings_outside_the_limits_get_400(client, uploads, settings, message):
    response = client.post("/api/jobs", files=uploads(), data={**TINY, **settings})
    assert response.status_code == 400 and message in response.json()["error"]


def test_digit_separators_are_not_numbers(client, uploads):
    for name in ("max_size", "style_weight"):
        response = client.post("/api/jobs", files=uploads(), data={**TINY, name: "1_6"})
        assert response.status_code == 400 and response.json()["error"].startswith(f"{name}: '1_6' is not a")


def test_whole_numbers_as_a_browser_may_write_them(client, uploads):
    job = submit(client, uploads(), max_size="4.8e1", iterations="4")
    assert job["config"]["max_size"] == 48
    events(client, job["id"])


def test_settings_left_out_take_the_defaults_within_the_servers_limits(tmp_path, uploads):
    with TestClient(create_app(tmp_path, limits=Limits(max_size=40, max_iterations=3))) as client:
        advertised = {s["name"]: s["default"] for s in client.get("/api/settings").json()["settings"]}
        assert (advertised["max_size"], advertised["iterations"]) == (40, 3)
        job = submit(client, uploads(), max_size="")  # the page sends empty fields as ""
        assert (job["config"]["max_size"], job["config"]["iterations"]) == (40, 3)
        assert events(client, job["id"])[-1][1]["status"] == "done"


def test_too_many_paintings_or_repeated_settings_get_one_message(client, uploads):
    photo, painting = uploads()
    response = client.post("/api/jobs", files=[photo, *[painting] * 5], data=TINY)
    assert response.status_code == 400
    assert response.json()["error"] == ("send one photo, at most 4 paintings, and each setting at most once "
                                        "(style_weight, max_size, iterations, style_scale, preserve_color)")
    every = {**TINY, "style_weight": "100", "style_scale": "1", "preserve_color": "none"}  # each setting once
    assert client.post("/api/jobs", files=[photo, *[painting] * 4], data=every).status_code == 201
    response = client.post("/api/jobs", files=[photo, painting], data={**every, "iterations": ["4", "5"]})
    # six fields: refused by the form parser's count, in the same words
    assert response.status_code == 400 and response.json()["error"].startswith("send one photo")
    for files, data, repeated in (([photo, photo, painting], TINY, "content was sent 2 times: "),
                                  ([photo, painting], {**TINY, "iterations": ["5", "6"]},
                                   "iterations was sent 2 times: ")):
        response = client.post("/api/jobs", files=files, data=data)
        assert response.status_code == 400 and response.json()["error"].startswith(repeated + "send one photo")


def test_a_photo_too_small_for_max_size_is_refused_before_it_is_queued(tmp_path, uploads):
    with TestClient(create_app(tmp_path)) as client:
        response = client.post("/api/jobs", files=uploads(), data={"max_size": "16", "iterations": "1"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error.startswith("photo 'golden_gate.jpg': 16×12 at 16 px is too narrow")
        assert error.endswith(": raise Size to 21 px or more, or crop the image)")  # the page's field, not max_size
        assert response.json()["setting"] == "max_size"  # the page marks Size, and keeps the photo
        strip = io.BytesIO()
        Image.new("RGB", (2000, 10)).save(strip, format="PNG")  # too thin at any Size this server allows
        response = client.post("/api/jobs", files=[("content", ("strip.png", strip.getvalue(), "image/png")),
                                                   uploads()[1]], data={**TINY, "max_size": "1024"})
        assert response.json()["error"] == (  # its first size, 512 px, is the first too narrow
            "photo 'strip.png': 512×3 at 512 px is too narrow (VGG-19's relu5_1 needs a short edge of at least 16 px, "
            "which it has only at 3100 px, more than the 1024 px allowed: crop the image)")
        wide = io.BytesIO()
        Image.new("RGB", (400, 40)).save(wide, format="PNG")
        response = client.post("/api/jobs", files=[uploads()[0], ("style", ("wide.png", wide.getvalue(), "image/png"))],
                               data={**TINY, "style_scale": "0.5"})
        assert response.status_code == 400 and response.json()["error"].startswith(
            "painting 'wide.png': seen at 66×7 for a 48 px picture, too narrow")
        assert response.json()["error"].endswith(": raise Size or Brush strokes, or crop the painting)")
        assert response.json()["setting"] == "max_size"
        assert client.get("/api/jobs").json()["jobs"] == [] and not any((tmp_path / "jobs").iterdir())


def test_other_sites_cannot_use_the_server_through_the_browser(tmp_path, uploads):
    app = create_app(tmp_path, hosts=("127.0.0.1", "LocalHost", "::1"))  # a machine's name may be mixed-case
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/jobs").status_code == 200
        assert client.get("/api/jobs", headers={"host": "[::1]:8000"}).status_code == 200
        assert client.get("/api/jobs", headers={"host": "192.168.1.20:8000"}).status_code == 200  # no DNS in it
        assert client.get("/api/jobs", headers={"host": "[fe80::1%25evil.example]:8000"}).status_code == 403
        assert client.get("/api/jobs", headers={"host": "LOCALHOST:8000"}).status_code == 200  # any case
        bad_origin = client.post("/api/jobs", files=uploads(), data=TINY, headers={"origin": "http://[::1"})
        assert bad_origin.status_code == 403 and bad_origin.headers["x-frame-options"] == "DENY"
        page = client.get("/")
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
        # DNS rebinding: a page on evil.example, its name resolving to 127.0.0.1, reading the results
        rebound = client.get("/api/jobs", headers={"host": "evil.example:8000"})
        assert rebound.status_code == 403 and "not 'evil.example:8000'" in rebound.json()["error"]
        # a form posted from another site's page (no preflight for multipart)
        forged = client.post("/api/jobs", files=uploads(), data=TINY, headers={"origin": "https://evil.example"})
        assert forged.status_code == 403 and "https://evil.example may not send" in forged.json()["error"]
        assert client.get("/api/jobs").json()["jobs"] == []
        own = client.post("/api/jobs", files=uploads(), data=TINY, headers={"origin": "http://127.0.0.1:8000"})
        assert own.status_code == 201
        events(client, own.json()["id"])  # let it finish before the app stops


def test_missing_images_and_wrong_encoding(client, uploads):
    content_only = uploads()[:1]
    response = client.post("/api/jobs", files=content_only, data=TINY)
    assert response.status_code == 400 and "no painting" in response.json()["error"]
    response = client.post("/api/jobs", json={"content": "photo.jpg"})
    assert response.status_code == 400 and "multipart/form-data" in response.json()["error"]
    response = client.post("/api/jobs", files=[*uploads(), ("iterations", ("iterations.txt", b"4", "text/plain"))])
    assert response.status_code == 400 and response.json()["error"] == "iterations must be a value, not a file"


@pytest.mark.parametrize("job_id", [
    "0123456789abcdef0123456789abcdef",  # well formed, unknown
    "..%2Fx", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "ABCDEF0123456789ABCDEF0123456789", "x" * 32, "1234",
])
def test_unknown_and_malformed_ids_are_404(client, job_id):
    for suffix in ("", "/events", "/result.png", "/preview.png"):
        response = client.get(f"/api/jobs/{job_id}{suffix}")
        assert response.status_code == 404 and "error" in response.json()
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 404


def test_a_restart_keeps_finished_results(tmp_path, uploads):
    with TestClient(create_app(tmp_path)) as client:
        done = submit(client, uploads(), **TINY)
        events(client, done["id"])
        running = submit(client, uploads(), **LONG)
        events(client, running["id"], until=lambda data: data["step"] >= 1)
        result = client.get(f"/api/jobs/{done['id']}/result.png").content
    # Leaving the block stopped the server: the running job was cancelled, keeping its best image.
    with TestClient(create_app(tmp_path)) as client:
        jobs = {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}
        assert jobs[done["id"]]["status"] == "done" and jobs[running["id"]]["status"] == "cancelled"
        assert jobs[running["id"]]["has_result"]
        assert client.get(f"/api/jobs/{done['id']}/result.png").content == result
        assert len(client.get(f"/api/jobs/{done['id']}").json()["points"]) == 4


def test_a_request_the_data_folder_cannot_store_gets_a_json_500(tmp_path, uploads, monkeypatch):
    with TestClient(create_app(tmp_path)) as client:
        shutil.rmtree(tmp_path / "jobs")
        (tmp_path / "jobs").write_text("")  # not a folder: no job folder can be made in it
        response = client.post("/api/jobs", files=uploads(), data=TINY)
        assert response.status_code == 500
        assert response.json() == {"error": "the server cannot write in its data folder (read-only or full?)"}
        # The disk full once the images are in: job.json cannot be written (as write_atomic reports it).
        (tmp_path / "jobs").unlink()
        (tmp_path / "jobs").mkdir()

        def disk_full(*files, **kwargs):
            raise impasto.ImageError(f"{files[0][0]}: cannot write (No space left on device)")

        monkeypatch.setattr(jobs, "write_atomic", disk_full)
        response = client.post("/api/jobs", files=uploads(), data=TINY)
        assert response.status_code == 500
        assert response.json() == {"error": "the server cannot write in its data folder (read-only or full?)"}
        assert client.get("/api/jobs").json()["jobs"] == [] and not any((tmp_path / "jobs").iterdir())


def test_a_full_queue_gets_429_before_the_uploads_are_read(tmp_path, uploads):
    stopped = Job("0" * 32, tmp_path / "jobs" / ("0" * 32), impasto.Config().to_dict(), "a.jpg", ["b.jpg"],
                  status="cancelled", step=3, stopped_at={"size_index": 0, "size": 32, "steps_at_size": 3})
    stopped.folder.mkdir(parents=True)
    stopped.save()
    Image.new("RGB", (8, 8)).save(stopped.result_path)  # the picture it would go on from
    client = TestClient(create_app(tmp_path, limits=Limits(max_queued=1)))  # not started: no worker takes a job
    submit(client, uploads(), **TINY)
    full = {"error": "1 jobs are already waiting; try again later"}
    for refused in (client.post("/api/jobs", files=uploads(b""), data=TINY),  # no "photo is empty": not read
                    client.post(f"/api/jobs/{stopped.id}/resume")):
        assert refused.status_code == 429 and refused.json() == full
    assert len(list((tmp_path / "jobs").iterdir())) == 2 and client.get(f"/api/jobs/{stopped.id}").json()["resumable"]


def test_serve_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "impasto"
    assert not (tmp_path / "xdg").exists()  # named, not created
    assert main(["--help"]) == 0 and "--max-upload-mb" in capsys.readouterr().out
    assert main(["--workers", "0"]) == 2 and "--workers must be at least 1" in capsys.readouterr().err
    assert main(["--port", "70000"]) == 2
    assert main(["--max-size", "65536"]) == 2 and "--max-size must be 16..65535, not 65536" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    assert "(default: None)" not in help_text and str(tmp_path / "xdg" / "impasto") in "".join(help_text.split())
    assert "(default: [])" not in help_text and "--port N " in help_text and "--max-upload-mb MB " in help_text
    assert main(["--max-upload-mb", "inf"]) == 2  # it had overflowed making the limit, with a traceback
    assert capsys.readouterr().err == "impasto serve: error: --max-upload-mb must be a positive number\n"
    with socket.create_server(("127.0.0.1", 0)) as taken:  # a port another program listens on
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--data-dir", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"impasto serve: error: cannot listen on 127.0.0.1 port {port} (Address already in use)"
    assert "open http" not in captured.out  # it does not send the user to the other program
    assert main(["--host", "no such host", "--port", "0", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err  # no warning that the network can reach an app that never listened
    assert err.startswith("impasto serve: error: cannot listen on no such host port 0 (") and err.count("\n") == 1
    # Each value at its limit is taken: what refuses is the next option, or the port in use (localhost, a
    # loopback name, with no warning that the network can reach the app).
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for argv, error in ((["--port", "65535", "--workers", "0"], "--workers must be at least 1, not 0"),
                            (["--max-size", "16", "--max-iterations", "0", "--port", port],
                             "--max-iterations must be at least 1"),
                            (["--max-iterations", "1", "--max-pixels", "0", "--port", port],
                             "--max-pixels must be positive"),
                            (["--max-pixels", "1", "--host", "localhost", "--port", port],
                             f"cannot listen on localhost port {port} (Address already in use)")):
            assert main([*argv, "--data-dir", str(tmp_path / "data")]) == 2
            assert capsys.readouterr().err == f"impasto serve: error: {error}\n"


def test_serve_answers_to_its_own_names_besides_ip_addresses():
    assert _allowed_hosts("127.0.0.1", ["impasto.test"]) == {*LOOPBACK_NAMES, "impasto.test"}
    # open to the network: also the names other machines reach this one by
    assert _allowed_hosts("0.0.0.0", []) == {*LOOPBACK_NAMES, "0.0.0.0", socket.gethostname(), socket.getfqdn()}


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's heaps")
def test_serve_has_its_job_workers_allocate_from_glibcs_main_heap(tmp_path):
    # There a run keeps the memory each step frees (impasto.memory); a thread has a heap of its own otherwise.
    script = ("import sys, threading\n"
              "from impasto.memory import _on_main_heap\n"
              "from impasto.web import main\n"
              "code = main(sys.argv[1:]) if sys.argv[1:] else None\n"
              "heap = []\n"
              "worker = threading.Thread(target=lambda: heap.append(_on_main_heap()))\n"
              "worker.start(), worker.join()\n"
              "print(code, heap[0])\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:  # serve stops there, after setting the heap up
        port = str(taken.getsockname()[1])
        served, plain = (subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                                        timeout=120) for args in (["--port", port, "--data-dir", str(tmp_path)], []))
    assert served.stdout == "2 True\n", served.stderr
    assert plain.stdout == "None False\n", plain.stderr


def _answers(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        return probe.connect_ex((host, port)) == 0


def _has_ipv6_loopback() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("signum, code, host, any_port", [
    (signal.SIGINT, 130, "127.0.0.1", True),
    pytest.param(signal.SIGTERM, 143, "::1", False,
                 marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6")),
])
def test_serve_takes_its_options_and_stops_on_a_signal_with_its_exit_code(tmp_path, signum, code, host, any_port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as probe:  # a port free a moment ago
        port = 0 if any_port else probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "impasto", "serve", "--host", host, "--port", str(port),
                               "--data-dir", str(tmp_path), "--max-upload-mb", "1.5", "--max-size", "256",
                               "--max-iterations", "50", "--max-pixels", "1000000", "--allowed-host", "impasto.test"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url_host = f"[{host}]" if ":" in host else host  # http://::1:8000/ is no URL
        line = server.stdout.readline()
        if any_port:  # --port 0: the line names the port the system chose, where the server answers
            port = int(line.removeprefix(f"impasto: open http://{url_host}:").split("/")[0])
            assert port > 0
        assert line.startswith(f"impasto: open http://{url_host}:{port}/ (results in {tmp_path}; Ctrl-C stops)")
        deadline = time.monotonic() + 60  # listening follows the line closely; a guard against hanging only
        while not _answers(host, port):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the options reach the app: its limits, and the name it answers to besides its own
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.request("GET", "/api/settings", headers={"Host": "impasto.test"})
        limits = json.loads(connection.getresponse().read())["limits"]
        connection.close()
        assert limits == {"max_upload_bytes": 1_572_864, "max_size": 256, "max_iterations": 50,
                          "max_pixels": 1_000_000, "max_queued": 20}
        server.send_signal(signum)
        assert server.wait(timeout=60) == code, server.stderr.read()
    finally:
        server.kill()
        server.communicate()


def test_serve_open_to_the_network_warns_and_answers_to_this_machines_name(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "impasto", "serve", "--host", "0.0.0.0", "--port", "0",
                               "--data-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # any address: the page is named by this machine's name
        name = socket.gethostname()
        assert line.startswith(f"impasto: open http://{name}:"), line
        port = int(line.removeprefix(f"impasto: open http://{name}:").split("/")[0])
        deadline = time.monotonic() + 60
        while not _answers("127.0.0.1", port):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for host, status in [(f"{name}:{port}", 200), (f"elsewhere.example:{port}", 403)]:  # against DNS rebinding
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/api/settings", headers={"Host": host})
            assert connection.getresponse().status == status, host
            connection.close()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 130
        assert server.stderr.read().startswith("impasto serve: warning: listening on 0.0.0.0: anyone who can reach "
                                               "this machine can use the app and see its results\n")
    finally:
        server.kill()
        server.communicate()


def test_an_uploads_name_is_shown_as_typed():
    # Chromium sends a " in a file name as %22: the page showed it so, and --rerun looked for that name.
    assert _display_name('Café 東京 %22quote%22.jpg', "photo") == 'Café 東京 "quote".jpg'
    assert _display_name("a%0Ab.jpg", "photo") == "ab.jpg" and _display_name("../../etc/passwd", "photo") == "passwd"
    assert _display_name(None, "photo") == "photo" and _display_name("x" * 100, "photo") == "x" * 80
    assert _display_name("C:\\fakepath\\photo.jpg", "photo") == "photo.jpg"  # a Windows path (old browsers)
    # no invisible format characters: U+202E turned "photo\u202egpj.exe" into "photoexe.jpg" on the page
    assert _display_name("photo\u202egpj.exe", "photo") == "photogpj.exe"


def test_download_names_keep_accented_and_other_letters():
    job = Job("0123456789abcdef" * 2, Path("unused"), {}, "Brücke über die Bucht.jpg", ["星月夜.jpg"])
    assert _download_name(job) == "impasto-BrückeüberdieBucht-星月夜-01234567.png"
    assert _download_name(job, ascii_only=True) == "impasto-BruckeuberdieBucht-image-01234567.png"
    blend = Job("0123456789abcdef" * 2, Path("unused"), {}, "p" * 40 + ".jpg", ["first.jpg", "second.jpg"])
    assert _download_name(blend) == f"impasto-{'p' * 30}-first-01234567.png"


@pytest.mark.parametrize("fmt, name", [("HEIF", "IMG_0001.HEIC"), ("AVIF", "photo.avif")])
def test_an_iphone_heic_or_an_avif_photo_is_painted(client, uploads, images, fmt, name):
    assert fmt in read_formats()  # HEIC by pillow-heif (the heic extra), which registers its writer too
    buffer = io.BytesIO()
    with Image.open(images / "content/golden_gate.jpg") as photo:
        photo.save(buffer, format=fmt, quality=80)
    job = submit(client, uploads(buffer.getvalue(), name=name), **TINY)
    assert events(client, job["id"])[-1][1]["status"] == "done"
    assert png_size(client.get(f"/api/jobs/{job['id']}/result.png").content) == (48, 36)  # 979×734


def test_files_are_kept_per_job(client, uploads, tmp_path, images):
    job = submit(client, uploads(), **TINY)
    events(client, job["id"])
    folder = tmp_path / "jobs" / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["content", "job.json", "result.png", "style-0"]
    assert (folder / "content").read_bytes() == (images / "content/golden_gate.jpg").read_bytes()
    assert json.loads((folder / "job.json").read_text())["status"] == "done"


def test_the_estimate_gives_the_painting_size_and_no_time_before_a_job_was_timed(client):
    for width, height, size, soft in ((979, 734, [512, 384], False), (734, 979, [384, 512], False),
                                      (128, 64, [512, 256], False), (127, 64, [512, 258], True)):
        answer = client.get(f"/api/estimate?width={width}&height={height}")  # soft: enlarged more than 4 times
        assert answer.status_code == 200 and answer.json() == {"seconds": None, "size": size, "soft": soft}
    assert client.get("/api/estimate?width=979&height=734&max_size=1000").json()["size"] == [1000, 750]
    # exactly the server's 40,000,000 pixels, which an upload may have too
    assert client.get("/api/estimate?width=8000&height=5000").json()["size"] == [512, 320]


def test_the_estimate_counts_every_steps_pixels_at_the_pace_of_the_last_job(tmp_path, uploads, monkeypatch):
    monkeypatch.setattr(jobs, "PACE_PIXELS", 48 * 36)  # the suite's jobs are tiny
    with TestClient(create_app(tmp_path)) as client:
        job = submit(client, uploads(), max_size="48", iterations="12")
        done = events(client, job["id"])[-1][1]
        pace = json.loads((tmp_path / "jobs" / job["id"] / "job.json").read_text())["pace"]
        assert done["status"] == "done" and done["step"] >= 11 and pace > 0
        own = client.get("/api/estimate?width=979&height=734&max_size=48&iterations=12").json()
        assert own["size"] == [48, 36] and own["seconds"] == pytest.approx(pace * 12 * 48 * 36, rel=5e-3)
        print_size = client.get("/api/estimate?width=979&height=734&max_size=1024&iterations=100").json()
        # 150 steps of 512×384 px, then 100 of 1024×768 px, on a network without relu5_1's three last
        # convolutions (0.77 of its multiply-adds), each with the 512 px picture of the composition term
        work = 150 * 512 * 384 + 100 * (round(1024 * 768 * 278208 / 361152) + 512 * 384)
        assert print_size["seconds"] == pytest.approx(pace * work, rel=5e-3)  # given to three figures
    with TestClient(create_app(tmp_path)) as restarted:  # the pace is kept with the job
        again = restarted.get("/api/estimate?width=979&height=734&max_size=1024&iterations=100").json()
        assert again == print_size


@pytest.mark.parametrize("query, message", [
    ("height=734", "width must be the photo's width in pixels, got ''"),
    ("width=0&height=734", "width must be the photo's width in pixels, got '0'"),
    ("width=979&height=7.5", "height must be the photo's height in pixels, got '7.5'"),
    ("width=99999&height=99999", "a 99999x99999 photo is more than this server's 40,000,000 pixels"),
    ("width=979&height=734&max_size=4096", "max_size 4096 is above this server's limit of 1024 px"),
    ("width=979&height=734&seed=3", "unknown field 'seed'; send width, height and any of style_weight, max_size"),
    ("width=979&height=734&max_size=256&max_size=1024", "max_size was sent 2 times: send each once"),
])
def test_an_estimate_of_a_bad_query_gets_400(client, query, message):
    answer = client.get(f"/api/estimate?{query}")
    assert answer.status_code == 400 and message in answer.json()["error"]
