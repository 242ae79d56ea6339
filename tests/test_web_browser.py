"""End to end in a real browser: `impasto serve` in its own process, headless Chromium driven by Playwright."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

# Outside CI a missing browser skips with a reason; in CI (`make test` installs both) it fails.
IN_CI = bool(os.environ.get("CI"))
sync_api = pytest.importorskip("playwright.sync_api") if not IN_CI else __import__(
    "playwright.sync_api", fromlist=["sync_api"])

from impasto.imageio import read_metadata  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# The real server, which takes the pace of the suite's tiny jobs (48 × 36 px) for its estimates.
SERVE = ("import sys; from impasto.web import jobs, main; jobs.PACE_PIXELS = 48 * 36; "
         "sys.exit(main(sys.argv[1:]))")


@pytest.fixture
def server(tmp_path):
    """The real server (`impasto.web.main`) on a free localhost port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, "--port", str(port), "--data-dir", str(tmp_path / "data"),
                                 "--max-size", "256", "--max-pixels", "2000000", "--allowed-host", "impasto.test"],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):  # until it answers (importing torch takes a few seconds)
            if proc.poll() is not None:
                pytest.fail(f"impasto serve exited with {proc.returncode}: {log_path.read_text()}")
            try:
                urllib.request.urlopen(url + "api/settings", timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"impasto serve never answered: {log_path.read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        (pytest.fail if IN_CI else pytest.skip)("Chromium is not installed (make test-deps installs it with apt-get)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        finally:
            browser.close()


def test_paint_in_the_browser(server, page, images, tmp_path):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": 1280, "height": 700})  # a laptop: the settings are taller than the screen
    page.goto(server)
    assert page.input_value("#setting-max_size") == "256"  # the Config default, capped by --max-size
    assert page.locator("#paint").bounding_box()["y"] + page.locator("#paint").bounding_box()["height"] <= 700
    help_of = "document.querySelector('#setting-{}').parentElement.querySelector('.help').textContent"
    assert page.evaluate(help_of.format("max_size")).endswith("(the photo is scaled to it; at most 256)")
    assert page.evaluate(help_of.format("iterations")).endswith(" (at most 1000)")
    assert page.input_value("#setting-style_scale") == "1"  # the default chosen, not the first choice
    assert page.is_disabled("#paint") and page.is_visible("#gallery-empty")
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    page.set_input_files("#style-file", str(images / "style/starry_night.jpg"))
    assert page.is_visible("#drop-content .thumb") and page.is_visible("#drop-style .thumb")
    assert page.inner_text("#drop-style .drop-name") == "starry_night.jpg"
    estimate = "document.querySelector('#estimate').textContent"
    # An answer slower than a later question's does not overwrite it: the server answers 32 px, then 40.
    held = {}
    page.route("**/api/estimate?*", lambda route: held.setdefault(
        urllib.parse.parse_qs(urllib.parse.urlsplit(route.request.url).query)["max_size"][0], route))
    for size in ("40", "32"):
        page.fill("#setting-max_size", size)
        for _ in range(600):  # asked once the settings rest a moment
            if size in held:
                break
            page.wait_for_timeout(50)
        else:
            pytest.fail(f"the page never asked for an estimate at {size} px")
    held.pop("32").continue_()
    page.wait_for_function(f"{estimate} === '32 × 24 px'")
    held.pop("40").continue_()
    page.wait_for_timeout(500)
    assert page.evaluate(estimate) == "32 × 24 px"
    page.unroute("**/api/estimate?*")
    for route in held.values():  # asked while the thumbnails loaded: answered (too late to count) now
        route.continue_()
    page.fill("#setting-max_size", "48")
    page.fill("#setting-iterations", "12")
    page.wait_for_function(f"{estimate} === '48 × 36 px'")  # no time before the server has painted
    # Record every picture the stage shows, and every status, time left and announcement.
    page.evaluate("""() => {
        window.shown = [];
        const img = document.querySelector('#preview');
        new MutationObserver(() => window.shown.push(img.src)).observe(img, {attributes: true, attributeFilter: ['src']});
        window.said = {'status-text': [], eta: [], announce: []};
        for (const [id, texts] of Object.entries(window.said)) {
            const el = document.getElementById(id);
            new MutationObserver(() => texts.push(el.textContent)).observe(el, {childList: true});
        }
    }""")
    page.click("#paint")
    # Looked at again mid-run, the page goes on following its painting (it does not start over: no tenth twice)
    page.wait_for_function("/^(Step ([3-9]|1\\d) |Finished)/.test(document.querySelector('#status-text').textContent)",
                           timeout=120_000)
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_selector(".card", timeout=120_000)  # the result reached the gallery

    shown = page.evaluate("window.shown")
    assert any("/preview.png?v=" in src for src in shown), shown  # live previews while it ran...
    assert "/result.png" in shown[-1]  # ...then the result
    assert page.inner_text("#status-text").startswith("Finished")
    assert page.inner_text("#announce").startswith("Finished: 12 steps")  # what a screen reader hears
    said = page.evaluate("window.said")
    # Queued, then loading the network (no "Step 0"), then steps (the server may send several as one)
    run = [text for text in said["status-text"] if text.startswith(("Waiting", "Preparing", "Step "))]
    assert run[:2] == ["Waiting for the worker…", "Preparing: reading the images and the network…"], run
    assert run[-1].startswith("Step ") and not any(text.startswith("Step 0 ") for text in run), run
    assert any(text.startswith("about ") and text.endswith(" s left") for text in said["eta"]), said["eta"]
    # A screen reader hears each tenth of the run once, not every step's numbers
    tenths = [int(text.split(" %")[0]) for text in said["announce"] if " % painted" in text]
    assert tenths == sorted(set(tenths)) and len(tenths) > 1, said["announce"]
    assert page.get_attribute("#bar", "aria-valuenow") == "100"
    assert page.get_attribute("#chart", "aria-label").endswith("at step 12")  # the chart in words
    assert page.evaluate("document.querySelector('#chart').toDataURL()") != page.evaluate(
        "(() => { const c = document.createElement('canvas'); const o = document.querySelector('#chart');"
        " c.width = o.width; c.height = o.height; return c.toDataURL(); })()")  # the loss curve was drawn
    assert page.is_hidden("#cancel") and not page.is_disabled("#paint") and page.is_hidden("#gallery-empty")
    # Now the server knows its pace: the time under Paint follows the settings.
    page.wait_for_function(f"{estimate}.startsWith('48 × 36 px, about ')")
    page.fill("#setting-max_size", "256")
    page.wait_for_function(f"{estimate}.startsWith('256 × 192 px, about ')")
    with urllib.request.urlopen(server + "api/estimate?width=979&height=734&max_size=256&iterations=12") as answer:
        seconds = json.load(answer)["seconds"]
    shown = page.evaluate(estimate)
    assert shown.endswith((" s at this server's pace", " min at this server's pace")), shown
    said = shown.split("about ")[1].split(" ")[0]  # "8.5" (s), "42" (s) or "2:39" (min): a machine busy elsewhere
    minutes, _, rest = said.rpartition(":")
    assert int(minutes or 0) * 60 + float(rest) == pytest.approx(seconds, abs=0.5 if seconds >= 10 else 0.05)
    assert page.get_attribute("#paint", "aria-describedby") == "estimate"  # read out with the button

    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.startswith("impasto-golden_gate-starry_night-") and path.suffix == ".png"
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        assert im.format == "PNG" and im.size == (48, 36)
    assert read_metadata(path)["config"]["iterations"] == 12

    # A text file with an image's name gets a clear message, and no job.
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture")
    page.set_input_files("#content-file", str(fake))
    page.click("#paint")
    page.wait_for_selector("#message:not([hidden])")
    assert "photo 'holiday.png': not an image file" in page.inner_text("#message")
    message = page.locator("#message").bounding_box()
    assert message["y"] >= 0 and message["y"] + message["height"] <= 700  # on the screen, not below it
    # The photo's control is marked as the one at fault, and described by the message, until it is fixed.
    assert page.get_attribute("#content-file", "aria-invalid") == "true"
    assert page.get_attribute("#content-file", "aria-describedby") == "message"
    assert page.evaluate("document.activeElement.id") == "content-file"
    assert page.locator(".card").count() == 1
    # The refused photo leaves its box: Paint waits for another rather than send it again.
    assert page.inner_text("#drop-content .drop-name") == "" and page.is_disabled("#paint")
    assert "has-image" not in page.get_attribute("#drop-content", "class")
    assert page.input_value("#content-file") == ""  # choosing the same file again, once fixed, is a change
    # ...and the status says to choose one, not "Ready: press Paint." beside a Paint that waits
    assert page.inner_text("#status-text") == "Choose a photo and a painting, then press Paint."
    # A photo over the server's limit of pixels is said to be when it is chosen, not after its upload
    Image.frombytes("RGB", (1500, 1400), os.urandom(1500 * 1400 * 3)).save(tmp_path / "big.png")
    page.set_input_files("#content-file", str(tmp_path / "big.png"))
    page.wait_for_function("document.querySelector('#estimate').textContent === "
                           "\"a 1500x1400 photo is more than this server's 2,000,000 pixels\"")
    assert page.inner_text("#status-text") == "Not ready: this server refuses the photo (the reason is under Paint)."
    page.click("#paint")  # sent all the same, it is refused, and its box and its estimate empty
    page.wait_for_function("document.querySelector('#message').textContent.startsWith(\"photo 'big.png'\")")
    page.wait_for_function(f"{estimate} === ''")
    assert page.inner_text("#status-text") == "Choose a photo and a painting, then press Paint."
    # A photo the picture enlarges more than 4 times is said to come out soft, as the command line says
    Image.new("RGB", (60, 45), "orange").save(tmp_path / "tiny.png")
    page.set_input_files("#content-file", str(tmp_path / "tiny.png"))
    page.wait_for_function("document.querySelector('#estimate').textContent.endsWith("
                           "'. The photo is 60 × 45 px: enlarged 4.3 times, it will look soft')")
    assert page.inner_text("#status-text") == "Ready: press Paint."  # a soft picture is a warning, not a refusal
    # A photo the page refuses itself (empty) does not leave the one before it in the box either.
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    assert page.is_enabled("#paint")
    # A photo too narrow at the Size chosen is no fault of the photo's: it stays, and Size is marked.
    Image.new("RGB", (400, 40), "teal").save(tmp_path / "strip.png")
    page.set_input_files("#content-file", str(tmp_path / "strip.png"))
    page.fill("#setting-max_size", "48")  # 48 × 5 px
    page.click("#paint")
    page.wait_for_function("document.querySelector('#message').textContent.includes('too narrow')")
    assert page.inner_text("#drop-content .drop-name") == "strip.png" and page.is_enabled("#paint")
    assert page.get_attribute("#setting-max_size", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "setting-max_size"
    (tmp_path / "empty.jpg").write_bytes(b"")
    page.set_input_files("#content-file", str(tmp_path / "empty.jpg"))
    assert "“empty.jpg” is empty" in page.inner_text("#message")
    assert page.get_attribute("#setting-max_size", "aria-describedby") == "help-max_size"  # its fault is over
    assert page.inner_text("#drop-content .drop-name") == "" and page.is_disabled("#paint")
    (tmp_path / "notes.txt").write_text("a photo of the bridge")  # not an image by its type: refused at once
    page.set_input_files("#content-file", str(tmp_path / "notes.txt"))
    assert page.inner_text("#message") == ("“notes.txt” does not look like an image (text/plain). "
                                           "Choose a JPEG, PNG or WebP file as the photo.")
    assert page.inner_text("#drop-content .drop-name") == ""
    with (tmp_path / "huge.jpg").open("wb") as huge:  # over the server's 32 MB a request: refused before its upload
        huge.truncate(33 * 2**20)
    page.set_input_files("#content-file", str(tmp_path / "huge.jpg"))
    assert page.inner_text("#message") == "“huge.jpg” is 33.0 MB; this server accepts at most 32.0 MB per request."
    # On a 320 px screen (WCAG's reflow width) a long file name in a message, and the gallery, fit.
    page.set_viewport_size({"width": 320, "height": 568})
    page.set_input_files("#content-file", str(fake.rename(tmp_path / ("holiday-" * 12 + ".png"))))
    page.click("#paint")
    page.wait_for_function("document.querySelector('#message').textContent.includes('holiday-holiday')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate("[...document.querySelectorAll('.card *')].every((e) => e.scrollWidth <= e.clientWidth"
                         " || getComputedStyle(e).textOverflow === 'ellipsis')")
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    assert page.get_attribute("#content-file", "aria-invalid") is None and page.is_hidden("#message")
    # A painting the server cannot read marks, and empties, the painting's box, not the photo's.
    (tmp_path / "sketch.jpg").write_text("not a picture either")
    page.set_input_files("#style-file", str(tmp_path / "sketch.jpg"))
    page.click("#paint")
    page.wait_for_function("document.querySelector('#message').textContent.startsWith(\"painting 'sketch.jpg'\")")
    assert page.get_attribute("#style-file", "aria-invalid") == "true"
    assert page.get_attribute("#content-file", "aria-invalid") is None
    assert page.evaluate("document.activeElement.id") == "style-file"
    assert page.inner_text("#drop-style .drop-name") == "" and page.inner_text("#drop-content .drop-name") != ""
    # While a painting is in progress, a gallery card does not take the stage from it
    page.set_input_files("#style-file", str(images / "style/starry_night.jpg"))
    page.click("#paint")
    page.wait_for_selector("#cancel:not([hidden])")
    page.locator(".card .title").click()
    assert page.inner_text("#message") == "A painting is in progress; its result appears here when it is done."
    assert page.is_visible("#cancel") and page.is_hidden("#download")
    assert errors == []


def test_an_iphone_photo_the_browser_cannot_show_is_painted(server, page, images, tmp_path):
    from impasto.imageio import read_formats

    assert "HEIF" in read_formats()  # pillow-heif (the heic extra), which registers its writer too
    with Image.open(images / "content/golden_gate.jpg") as photo:
        photo.save(tmp_path / "IMG_0042.HEIC", format="HEIF", quality=80)
    page.goto(server)
    page.set_input_files("#style-file", str(images / "style/starry_night.jpg"))
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    page.wait_for_function("document.querySelector('#estimate').textContent.startsWith('256 × 192 px')")
    page.set_input_files("#content-file", str(tmp_path / "IMG_0042.HEIC"))
    page.wait_for_selector("#message:not([hidden])")  # Chromium does not decode HEIC: the server checks it
    page.wait_for_function("document.querySelector('#estimate').textContent === ''")  # not the last photo's size
    assert page.inner_text("#message") == ("This browser cannot show “IMG_0042.HEIC”; the server checks it "
                                           "when you press Paint.")
    assert page.inner_text("#drop-content .drop-name") == "IMG_0042.HEIC (no preview)"
    page.set_input_files("#style-file", str(images / "style/the_scream.jpg"))  # another painting: the note stays
    page.wait_for_function("document.querySelector('#drop-style .drop-name').textContent === 'the_scream.jpg'")
    assert page.is_visible("#message") and "IMG_0042.HEIC" in page.inner_text("#message")
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))  # another photo: the note goes
    assert page.is_hidden("#message")
    page.set_input_files("#content-file", str(tmp_path / "IMG_0042.HEIC"))
    page.wait_for_selector("#message:not([hidden])")
    page.fill("#setting-max_size", "48")
    page.fill("#setting-iterations", "6")
    page.click("#paint")
    page.wait_for_selector(".card", timeout=120_000)
    assert page.inner_text("#status-text").startswith("Finished")
    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.startswith("impasto-IMG_0042-the_scream-")
    with Image.open(path) as im:
        assert im.size == (48, 36)  # golden_gate, 979×734


def test_keyboard_and_phone(server, page, images):
    # `impasto serve` on 127.0.0.1 answers only to loopback names (a DNS-rebinding guard)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(server + "api/jobs", headers={"Host": "evil.example"}))
    assert refused.value.code == 403
    allowed = urllib.request.Request(server + "api/jobs", headers={"Host": "impasto.test"})  # --allowed-host
    assert urllib.request.urlopen(allowed).status == 200
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": 375, "height": 700})
    posted = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/api/jobs") and posted.append(r.url))
    page.goto(server)
    page.focus("#setting-iterations")
    page.keyboard.press("Enter")  # no images yet: Paint waits, and so does Enter
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    page.set_input_files("#style-file", str(images / "style/starry_night.jpg"))
    assert page.inner_text("#status-text") == "Ready: press Paint."
    page.fill("#setting-max_size", "")  # an empty field is the browser's to flag, not a silent default
    page.click("#paint")
    assert not page.evaluate("document.querySelector('#setting-max_size').validity.valid")
    assert page.is_hidden("#cancel")  # nothing was sent
    page.fill("#setting-max_size", "32")
    page.fill("#setting-iterations", "1001")  # above the server's limit: the browser says so
    page.click("#paint")
    assert not page.evaluate("document.querySelector('#setting-iterations').validity.valid")
    assert page.is_hidden("#cancel")
    page.fill("#setting-iterations", "3")
    slider = page.locator("#setting-style_weight")
    assert slider.get_attribute("aria-valuetext") == "200"  # what the page shows, not log10 of it
    slider.focus()
    page.keyboard.press("Enter")  # on the slider it does not paint (which disables Paint at once)
    assert page.is_enabled("#paint")
    page.focus("#setting-iterations")
    page.keyboard.press("Enter")  # in a field, as in a form: it paints (it did nothing), the focus kept there
    page.wait_for_selector("#cancel:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "setting-iterations"
    assert len(posted) == 1  # that Enter's painting, the only one sent
    assert page.is_disabled("#paint") and page.get_attribute("#paint", "title").startswith("A painting is in progress")
    page.focus("#cancel")  # where Paint pressed puts it
    page.wait_for_selector(".card", timeout=120_000)
    page.wait_for_function("document.activeElement.id === 'download'")  # focus followed the run, not lost
    assert page.inner_text(".card .meta span") == "32×24 · 3 steps"
    assert "style strength 200 · 3 steps · " in page.get_attribute(".card .title", "title")  # repeated runs told apart
    stage, picture = page.locator("#stage").bounding_box(), page.locator("#preview").bounding_box()
    assert picture["x"] >= stage["x"] and picture["x"] + picture["width"] <= stage["x"] + stage["width"] + 0.5
    page.evaluate("document.querySelector('#preview').hidden = true")
    page.locator(".card .title").focus()  # the card's button
    page.keyboard.press("Enter")  # a gallery card opens from the keyboard
    page.wait_for_selector("#preview:not([hidden])")
    assert page.inner_text("#status-text").startswith("Finished: 3 steps")
    # Its settings come back to the form, to paint it again or vary it.
    page.fill("#setting-iterations", "50")
    page.fill("#setting-max_size", "64")
    page.click("#reuse")
    assert (page.input_value("#setting-iterations"), page.input_value("#setting-max_size")) == ("3", "32")
    assert page.inner_text("#message") == "The form has the settings of golden_gate × starry_night."
    # A painting made when this server allowed a larger Size: the form takes its default, and says so
    page.evaluate("state.shown.config.max_size = 4096")
    page.click("#reuse")
    assert page.inner_text("#message") == ("The form has the settings of golden_gate × starry_night, but for "
                                           "max_size, beyond this server's limits now (set to the default).")
    assert (page.input_value("#setting-iterations"), page.input_value("#setting-max_size")) == ("3", "256")
    page.reload()  # kept, as the form's own changes are
    assert page.input_value("#setting-iterations") == "3"
    page.wait_for_selector(".card")
    page.locator(".card .title").focus()
    # Looked at again, the page asks for its gallery anew: the rebuilt card keeps the keyboard's focus
    page.evaluate("window.card = document.querySelector('.card');"
                  " document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function("!window.card.isConnected")
    assert page.evaluate("document.activeElement.matches('.card .title')")
    page.keyboard.press("Enter")
    page.wait_for_selector("#preview:not([hidden])")
    # The focus goes where the painting is shown, and a screen reader says which one it is.
    assert page.evaluate("document.activeElement.id") == "stage"
    assert page.inner_text("#announce").startswith("golden_gate × starry_night: Finished: 3 steps")
    # Each setting is described by its help; no transitions move for a user who asks for less motion.
    assert page.evaluate("[...document.querySelectorAll('#settings input, #settings select')].every((f) =>"
                         " document.getElementById(f.getAttribute('aria-describedby')).classList.contains('help'))")
    page.emulate_media(reduced_motion="reduce")
    assert page.evaluate("getComputedStyle(document.querySelector('#bar-fill')).transitionDuration") == "0s"
    assert errors == []


def _seconds_left(text: str) -> float:
    """The seconds in the page's "about 9.5 s left" or "about 1:05 min left"."""
    figure, unit = text.removeprefix("about ").removesuffix(" left").split()
    minutes, _, seconds = figure.rpartition(":")
    return (int(minutes) * 60 + int(seconds)) if unit == "min" else float(figure)


def _paint(page, images, iterations: int, size: int = 48) -> None:
    """Choose golden_gate and starry_night, ask for a ``size`` px picture in ``iterations`` steps, press Paint."""
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    page.set_input_files("#style-file", str(images / "style/starry_night.jpg"))
    page.fill("#setting-max_size", str(size))
    page.fill("#setting-iterations", str(iterations))
    page.click("#paint")


def test_cancel_then_resume_in_the_browser(server, page, images):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the stage is below the settings
    page.goto(server)
    _paint(page, images, 100)
    page.wait_for_function("/^Step [3-9]/.test(document.querySelector('#status-text').textContent)", timeout=120_000)
    assert page.is_hidden("#resume")
    for shown in ("#stage", "#status-text", "#cancel"):  # Paint brought the painting and its controls into sight
        box = page.locator(shown).bounding_box()
        assert -1 <= box["y"] <= 844 - min(box["height"], 300), shown  # -1: scrolled to its top, to a subpixel
    page.goto(server)  # opened again mid-run: it follows the run, but Space (to scroll) must not cancel it
    page.wait_for_function("/^Step /.test(document.querySelector('#status-text').textContent)", timeout=30_000)
    assert page.evaluate("document.activeElement.id") != "cancel"
    assert page.evaluate("window.scrollY") == 0  # nor does it jump past the form the user opened
    page.click("#cancel")
    page.wait_for_selector("#resume:not([hidden])", timeout=120_000)
    stopped = page.inner_text("#status-text")
    assert stopped.startswith("Cancelled after") and page.inner_text(".card .badge") == "cancelled"
    steps_before = int(stopped.split()[2])
    page.reload()  # a page opened later shows the newest job stopped part way, ready to resume
    page.wait_for_selector("#resume:not([hidden])", timeout=30_000)
    assert page.inner_text("#status-text") == stopped and page.is_visible("#download")
    other = page.context.browser.new_page()  # another tab (another window) on the same stopped painting
    other.goto(server)
    other.wait_for_selector("#resume:not([hidden])", timeout=30_000)
    page.click("#resume")
    page.wait_for_selector("#cancel:not([hidden])")
    assert page.is_enabled("#resume")  # hidden while it runs, and ready if it is stopped again
    # Looked at again, the other tab follows its painting, resumed here: no stale Cancelled with a Resume
    # that would fail, nor "a painting started elsewhere" for this very one.
    other.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    other.wait_for_selector("#cancel:not([hidden])", timeout=30_000)
    assert other.is_hidden("#resume") and other.is_hidden("#message")
    other.close()
    assert page.is_hidden("#resume")
    page.wait_for_function("document.querySelectorAll('.card').length === 0")  # no stale card while it paints
    assert page.is_disabled("#paint") and page.get_attribute("#paint", "title").startswith("A painting is in progress")
    page.wait_for_function("document.querySelector('#status-text').textContent.startsWith('Finished')",
                           timeout=120_000)
    assert page.get_attribute("#paint", "title") == ""
    steps = int(page.inner_text("#status-text").split()[1])
    assert steps > steps_before and page.is_hidden("#resume")
    page.wait_for_function("document.querySelectorAll('.card').length === 1")  # the gallery is asked for anew
    assert page.locator(".card .badge").count() == 0 and errors == []


def test_the_stage_comes_back_with_the_server(server, page, images):
    # The server away as the painting ends (restarting, say): the finished picture cannot load then, nor
    # the gallery. Once it answers again, the stage shows the picture, not the last preview.
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    _paint(page, images, 60)
    page.wait_for_function("/^Step /.test(document.querySelector('#status-text').textContent)", timeout=120_000)
    away = lambda route: route.abort("connectionrefused")  # noqa: E731
    page.route("**/api/jobs", away)
    page.route("**/result.png*", away)
    page.wait_for_function("document.querySelector('#message').textContent.startsWith('Cannot load the gallery')",
                           timeout=120_000)
    assert page.inner_text("#status-text").startswith("Finished")
    assert "/result.png" not in page.get_attribute("#preview", "src")  # still the last preview
    page.unroute("**/api/jobs")
    page.unroute("**/result.png*")
    page.wait_for_function("document.querySelector('#preview').src.includes('/result.png')", timeout=30_000)
    assert page.is_hidden("#message") and page.locator(".card").count() == 1 and errors == []


def test_a_lost_event_stream_is_said_and_the_page_follows_again(server, page, images):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    message = "document.querySelector('#message').textContent"
    page.clock.install()  # time flows as ever, until the test moves it on
    page.goto(server)
    page.route("**/events", lambda route: route.abort("connectionrefused"))  # the server out of reach a while
    _paint(page, images, 1000, size=128)  # long enough to be cancelled on any machine
    page.wait_for_function(f"{message} === 'Lost the connection to the server; trying again…'", timeout=30_000)
    assert page.inner_text("#status-text") == "No news from the server…"
    assert page.get_attribute("#message", "role") == "status"  # a note, said politely
    page.unroute("**/events")  # the browser tries again by itself: once through, the note goes at once
    page.wait_for_selector("#message", state="hidden", timeout=30_000)
    assert page.is_visible("#cancel")  # still painting: not the end of the run that hid it
    page.wait_for_function("/^Step /.test(document.querySelector('#status-text').textContent)")
    # Between the server's events the time left counts down on its own (a big print's step takes seconds):
    # half of it moved on in the page, it says about half of what the server last did.
    page.wait_for_function("/ left$/.test(document.querySelector('#eta').textContent)")
    first = _seconds_left(page.evaluate("""() => { const eta = document.querySelector('#eta');
        window.etas = [eta.textContent];
        new MutationObserver(() => window.etas.push(eta.textContent)).observe(eta, {childList: true});
        return eta.textContent; }"""))
    page.clock.run_for(round(first * 500))
    etas = [_seconds_left(text) for text in page.evaluate("window.etas") if text]
    assert min(etas) <= first * 0.6, etas
    page.click("#cancel")
    page.wait_for_selector("#resume:not([hidden])", timeout=120_000)
    # A stream the server refuses outright is not tried again: the page says the connection is lost
    page.route("**/events", lambda route: route.fulfill(status=503, body="busy"))
    page.click("#paint")
    page.wait_for_function(f"{message} === 'Lost the connection to the server.'", timeout=30_000)
    assert page.get_attribute("#message", "role") == "alert" and errors == []  # an error, said at once


def test_the_page_keeps_its_settings_and_its_own_painting(server, page, images):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.fill("#setting-max_size", "32")
    page.fill("#setting-iterations", "3")
    page.select_option("#setting-style_scale", "2")
    page.reload()  # the settings survive a reload (the images cannot)
    assert (page.input_value("#setting-max_size"), page.input_value("#setting-iterations"),
            page.input_value("#setting-style_scale")) == ("32", "3", "2")
    page.set_input_files("#content-file", str(images / "content/golden_gate.jpg"))
    page.set_input_files("#style-file", str(images / "style/starry_night.jpg"))
    page.click("#paint")
    page.wait_for_selector("#download:not([hidden])", timeout=120_000)
    assert page.inner_text("#result-info").startswith("golden_gate × starry_night · 32 × 24 px")
    # A painting started elsewhere (another tab) does not take the stage from this one's result.
    page.evaluate("""() => {
        const form = new FormData();
        form.append('content', files.content);
        form.append('style', files.style);
        form.append('max_size', '32');
        form.append('iterations', '1000');  // the server's most
        return fetch('/api/jobs', {method: 'POST', body: form}).then((r) => r.json()).then((j) => { window.other = j; });
    }""")
    assert page.evaluate("window.other.status") == "queued"
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_selector("#message.info:not([hidden])")
    assert page.inner_text("#message").startswith("A painting started elsewhere is in progress (golden_gate × starry_night)")
    assert page.inner_text("#status-text").startswith("Finished: 3 steps") and page.is_hidden("#cancel")
    page.evaluate("fetch(window.other.urls.cancel, {method: 'POST'})")
    other = server + f"api/jobs/{page.evaluate('window.other.id')}"
    deadline = time.monotonic() + 120  # a guard against hanging only
    while json.load(urllib.request.urlopen(other))["status"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # New images, here dropped on a box, clear the last painting's status, Download, Resume and "Use its
    # settings": they belong to other images.
    dropped = page.evaluate_handle("""(b64) => {
        const data = new DataTransfer();
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        data.items.add(new File([bytes], 'the_scream.jpg', {type: 'image/jpeg'}));
        return data;
    }""", base64.b64encode((images / "style/the_scream.jpg").read_bytes()).decode())
    page.dispatch_event("#drop-style", "dragover", {"dataTransfer": dropped})
    assert "dragover" in page.get_attribute("#drop-style", "class")  # where it would land, shown
    page.dispatch_event("#drop-style", "drop", {"dataTransfer": dropped})
    assert page.inner_text("#drop-style .drop-name") == "the_scream.jpg"
    assert "dragover" not in page.get_attribute("#drop-style", "class")
    assert page.inner_text("#status-text") == "Ready: press Paint."
    assert page.is_hidden("#download") and page.is_hidden("#resume") and page.is_hidden("#preview")
    assert page.is_hidden("#reuse")
    # A painting deleted from the gallery leaves it, and the server's data folder.
    page.evaluate("refreshGallery()")
    page.wait_for_function("document.querySelectorAll('.card').length >= 1")
    cards = page.locator(".card").count()
    page.locator(".card").first.click()  # on the stage, then deleted: the stage empties too
    page.wait_for_selector("#download:not([hidden])")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".card .link").first.click()
    page.wait_for_function(f"document.querySelectorAll('.card').length === {cards - 1}")
    assert page.is_hidden("#download") and page.inner_text("#status-text") == "Ready: press Paint."
    # The focus, on the deleted card's button, moves to the next card's, or to the gallery's heading.
    page.wait_for_function("document.activeElement.classList.contains('title')"
                           " || document.activeElement.id === 'gallery-heading'")
    page.once("dialog", lambda dialog: dialog.dismiss())  # changed their mind: nothing happens
    if cards > 1:
        page.locator(".card .link").first.click()
        assert page.locator(".card").count() == cards - 1
    page.click("#defaults")
    assert (page.input_value("#setting-max_size"), page.input_value("#setting-style_scale")) == ("256", "1")
    assert page.evaluate("document.activeElement.id") == "defaults"  # the rebuilt form's, not <body>
    page.reload()
    assert page.input_value("#setting-iterations") == "100"
    # Saved settings this server does not take (its limits changed, say): each field shows its default
    page.evaluate("localStorage.setItem('impasto-settings', JSON.stringify("
                  "{max_size: '4096', iterations: '2.5', style_scale: '7', style_weight: 'x'}))")
    page.reload()
    assert (page.input_value("#setting-max_size"), page.input_value("#setting-iterations"),
            page.input_value("#setting-style_scale")) == ("256", "100", "1")
    assert page.get_attribute("#setting-style_weight", "aria-valuetext") == "200" and errors == []
