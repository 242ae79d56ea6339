// impasto's page: choose two images, pick settings, Paint, watch progress (Server-Sent Events), download.
// Vanilla JS, no build step. The form is built from GET /api/settings, so new settings need no change here.
"use strict";

const $ = (id) => document.getElementById(id);
const files = { content: null, style: null };
const state = {
  settings: null,   // GET /api/settings
  active: null,     // the job being painted: {id, urls, ...}
  view: null,       // the id of the job on the stage
  points: [],       // [step, loss, content, style] of the job on the stage
  total: 0,
  source: null,     // EventSource of the active job
  previewStep: 0,
  previewLoading: false,
  previewPending: null,
  eta: null,        // {seconds, at}: the time left the server last gave, counted down between its events
  announced: -1,    // the tenths of the run on the stage told to a screen reader so far
  shown: null,      // the job on the stage, with its settings ("Use its settings")
};
const SAVED_SETTINGS = "impasto-settings";  // localStorage: the form as the user last left it

// ---------------------------------------------------------------------------------------------
// Start-up

document.addEventListener("DOMContentLoaded", async () => {
  setUpDrop("content");
  setUpDrop("style");
  $("paint").addEventListener("click", paint);
  $("cancel").addEventListener("click", cancel);
  $("resume").addEventListener("click", resume);
  $("reuse").addEventListener("click", reuseSettings);
  // Enter in a setting's field paints, as in a form with a submit button (this one has none of its own)
  $("settings").addEventListener("submit", (event) => event.preventDefault());
  $("settings").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.target.tagName !== "INPUT" || event.target.type === "range") return;
    event.preventDefault();
    if (!$("paint").disabled) paint();
  });
  window.addEventListener("resize", drawChart);
  drawChart();
  // A focused field scrolls clear of the sticky Paint bar, however tall its message makes it.
  new ResizeObserver(([entry]) => document.documentElement.style.setProperty(
    "--sticky-bar", `${Math.ceil(entry.borderBoxSize[0].blockSize) + 16}px`)).observe(document.querySelector(".actions"));
  try {
    state.settings = await api("/api/settings");
  } catch (err) {
    showMessage(`Cannot load the page's settings: ${err.message}`);
    return;
  }
  $("version").textContent = `v${state.settings.version}`;
  buildForm(state.settings.settings);
  updatePaintButton();
  catchUp(await refreshGallery(), true);
  // Another tab may have started a painting meanwhile: looked at again, this one catches up.
  document.addEventListener("visibilitychange", async () => {
    if (!document.hidden && !busy()) catchUp(await refreshGallery(), false);
  });
  setInterval(countDown, 1000);
});

// Follow the painting in progress (the running one before those queued), unless the stage shows
// another painting of this page's own; or, on opening the page, show the newest job if it stopped part
// way (with Resume) or failed (saying why); else show the stage's painting as the server now has it
// (another tab may have resumed it, or its picture failed to load while the server was away).
function catchUp(jobs, opening) {
  const unfinished = jobs.find((j) => j.status === "running") || jobs.find((j) => j.status === "queued");
  const shown = opening ? null : jobs.find((j) => j.id === state.view);
  if (unfinished && (!state.view || unfinished.id === state.view)) {
    follow(unfinished);
  } else if (unfinished) {
    showMessage(`A painting started elsewhere is in progress (${jobTitle(unfinished)}); ` +
                "its result will appear in the gallery.", "info", false);
  } else if (opening && jobs.length && (jobs[0].resumable || jobs[0].status === "failed")) {
    api(`/api/jobs/${jobs[0].id}`).then((job) => showJob(job, job.points)).catch(() => {});
  } else if (shown) {
    api(shown.urls.self).then((job) => { if (state.view === job.id && !busy()) showJob(job, job.points); })
      .catch(() => {});
  }
}

const busy = () => state.active && (state.active.status === "queued" || state.active.status === "running");

async function api(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch {  // the browser's "Failed to fetch": no answer at all
    throw new Error("no answer from the impasto server (is it still running?)");
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const text = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(text), { status: response.status, setting: body && body.setting });
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// Images: drag and drop or file picker, with thumbnails

function setUpDrop(kind) {
  const zone = $(`drop-${kind}`);
  const input = $(`${kind}-file`);
  input.addEventListener("change", () => input.files[0] && chooseFile(kind, input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragover");
    const file = e.dataTransfer.files[0];
    if (file) chooseFile(kind, file);
  });
}

function chooseFile(kind, file) {
  const what = kind === "content" ? "photo" : "painting";
  const limit = state.settings ? state.settings.limits.max_upload_bytes : Infinity;
  const about = $("message").dataset.about;  // a note on the other box's file stays while that file does
  if (!about || about === kind) hideMessage();
  const input = $(`${kind}-file`);
  const refusal = file.type && !file.type.startsWith("image/")
    ? `“${file.name}” does not look like an image (${file.type}). Choose a JPEG, PNG or WebP file as the ${what}.`
    : file.size === 0 ? `“${file.name}” is empty. Choose a JPEG, PNG or WebP file as the ${what}.`
    : file.size > limit ? `“${file.name}” is ${mb(file.size)} MB; this server accepts at most ${mb(limit)} MB per request.`
    : null;
  if (refusal) {
    clearChoice(kind);  // the box must not go on showing, and Paint sending, an image the user replaced
    showMessage(refusal, "error", true, input);
    return;
  }
  files[kind] = file;
  if (!busy()) clearStage();  // the last painting's status and Resume belong to other images
  const zone = $(`drop-${kind}`);
  const thumb = zone.querySelector(".thumb");
  if (thumb.src) URL.revokeObjectURL(thumb.src);
  thumb.onerror = () => {  // damaged, or a format only the server reads (TIFF): it checks on Paint
    thumb.hidden = true;
    updateEstimate();  // no size known: not the last photo's
    if (files[kind] !== file) return;
    zone.querySelector(".drop-name").textContent = `${file.name} (no preview)`;
    showMessage(`This browser cannot show “${file.name}”; the server checks it when you press Paint.`, "info");
    $("message").dataset.about = kind;
  };
  thumb.onload = updateEstimate;  // the photo's size is known now
  thumb.src = URL.createObjectURL(file);
  thumb.hidden = false;
  zone.classList.add("has-image");
  zone.querySelector(".drop-name").textContent = file.name;
  updatePaintButton();
}

// An empty box again: after a file the page or the server refused, Paint waits for another.
function clearChoice(kind) {
  files[kind] = null;
  const zone = $(`drop-${kind}`);
  const thumb = zone.querySelector(".thumb");
  if (thumb.src) URL.revokeObjectURL(thumb.src);
  thumb.removeAttribute("src");
  thumb.hidden = true;
  zone.classList.remove("has-image");
  zone.querySelector(".drop-name").textContent = "";
  $(`${kind}-file`).value = "";  // choosing the same file again is a change too
  updatePaintButton();
  updateEstimate();
}

const mb = (bytes) => (bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1);

// ---------------------------------------------------------------------------------------------
// Settings form, built from the server's description of each setting

// ``saved``: the form's text values to show (those the user left, by default), each within its limits.
function buildForm(settings, saved = savedSettings()) {
  const form = $("settings");
  form.replaceChildren();
  for (const s of settings) {
    const field = document.createElement("div");
    field.className = "field";
    const label = document.createElement("label");
    label.htmlFor = `setting-${s.name}`;
    label.textContent = s.label + (s.unit ? ` (${s.unit})` : "");
    field.append(label);
    if (s.widget === "log-slider") {
      field.classList.add("wide");
      const out = document.createElement("output");
      label.append(out);
      const range = document.createElement("input");
      range.type = "range";
      range.id = `setting-${s.name}`;
      range.name = s.name;
      range.min = Math.log10(s.min);
      range.max = Math.log10(s.max);
      range.step = 0.01;
      range.value = Math.log10(within(s, saved[s.name]) ?? s.default);
      range.dataset.log = "1";
      const show = () => {
        out.textContent = formatNumber(sliderValue(range));
        range.setAttribute("aria-valuetext", out.textContent);  // the value, not its logarithm
      };
      range.addEventListener("input", show);
      show();
      const scale = document.createElement("div");
      scale.className = "scale";
      scale.innerHTML = "<span>more photo</span><span>more painting</span>";
      field.append(range, scale);
    } else if (s.widget === "select") {
      const select = document.createElement("select");
      select.id = `setting-${s.name}`;
      select.name = s.name;
      for (const [value, text] of s.choices) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = text;
        // the saved choice, else the default (a number's default is 1, its choice "1")
        option.selected = value === (within(s, saved[s.name]) ?? String(s.default));
        select.append(option);
      }
      field.append(select);
    } else {
      const input = document.createElement("input");
      input.type = "number";
      input.id = `setting-${s.name}`;
      input.name = s.name;
      input.value = within(s, saved[s.name]) ?? s.default;
      input.step = s.type === "int" ? 1 : "any";
      if (s.min !== undefined) input.min = s.min;
      if (s.max !== undefined) input.max = s.max;
      input.required = true;
      field.append(input);
    }
    const help = document.createElement("span");
    help.className = "help";
    help.id = `help-${s.name}`;
    help.textContent = withMaximum(s);
    field.append(help);
    field.querySelector("input, select").setAttribute("aria-describedby", help.id);
    form.append(field);
  }
  const reset = document.createElement("button");
  reset.type = "button";
  reset.id = "defaults";
  reset.className = "link";
  reset.textContent = "Restore the default settings";
  reset.addEventListener("click", () => {
    try { localStorage.removeItem(SAVED_SETTINGS); } catch { /* storage turned off */ }
    buildForm(settings);
    $("defaults").focus();  // the rebuilt form's own button, not <body>
  });
  form.append(reset);
  form.oninput = form.onchange = () => {
    try { localStorage.setItem(SAVED_SETTINGS, JSON.stringify(settingValues())); } catch { /* storage turned off */ }
    updateEstimate();
  };
  updateEstimate();
}

// The settings the user left the page with (a reload keeps them), as the form's text values.
function savedSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SAVED_SETTINGS));
    return saved && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}

// A saved value the setting still takes (this server's limits may have changed): a number within
// its limits, or one of its choices; else null.
function within(s, text) {
  if (s.widget === "select") return s.choices.some(([v]) => v === text) ? text : null;
  const value = Number(text);
  if (text === undefined || text === "" || !Number.isFinite(value)) return null;
  if ((s.min !== undefined && value < s.min) || (s.max !== undefined && value > s.max)) return null;
  return s.type === "int" && !Number.isInteger(value) ? null : value;
}

// A number field's help with its limit: "(the photo is scaled to it; at most 1024)".
function withMaximum(s) {
  if (s.max === undefined || s.widget !== "number") return s.help;
  return s.help.endsWith(")") ? `${s.help.slice(0, -1)}; at most ${s.max})` : `${s.help} (at most ${s.max})`;
}

function sliderValue(range) {
  const v = 10 ** Number(range.value);
  return Number(v.toPrecision(v < 10 ? 2 : 3));
}

function settingValues() {
  const values = {};
  for (const input of $("settings").querySelectorAll("input, select")) {
    values[input.name] = input.dataset.log ? String(sliderValue(input)) : input.value.trim();
  }
  return values;
}

// The form takes the settings of the painting on the stage, so that Paint repeats it (or varies it).
function reuseSettings() {
  const job = state.shown;
  const values = {};
  for (const s of state.settings.settings) {
    if (job.config[s.name] !== undefined && job.config[s.name] !== null) values[s.name] = String(job.config[s.name]);
  }
  buildForm(state.settings.settings, values);
  try { localStorage.setItem(SAVED_SETTINGS, JSON.stringify(settingValues())); } catch { /* storage turned off */ }
  const outside = state.settings.settings.filter((s) => s.name in values && within(s, values[s.name]) === null)
    .map((s) => s.name);
  showMessage(`The form has the settings of ${jobTitle(job)}` + (outside.length ? `, but for ${outside.join(", ")}, ` +
    "beyond this server's limits now (set to the default)" : "") + ".", "info", false);
  $("reuse").focus();
}

function updatePaintButton() {
  $("paint").disabled = !(state.settings && files.content && files.style) || busy();
  // Why it waits, when the reason is not on the form: a painting (perhaps another tab's) is in progress.
  $("paint").title = busy() ? "A painting is in progress: Paint is ready again when it ends (or is cancelled)" : "";
  if (!state.view) {  // "Ready" only while both images are there and the estimate found no fault with the photo
    const chosen = files.content && files.style;
    setStatus(!chosen ? "Choose a photo and a painting, then press Paint." : estimate.refusal ?
      "Not ready: this server refuses the photo (the reason is under Paint)." : "Ready: press Paint.", "");
  }
}

// Under Paint: the picture's size and about how long painting it would take, at the pace of the
// server's last painting of 256 × 144 px or more (before one, the size alone). Asked once the
// settings rest a moment.
// ``refusal``: the server's reason why it would refuse the photo (too many pixels), or "".
const estimate = { timer: null, asked: 0, refusal: "" };

function updateEstimate() {
  clearTimeout(estimate.timer);
  estimate.timer = setTimeout(askEstimate, 250);
}

async function askEstimate() {
  const asked = ++estimate.asked;  // a slower answer to an earlier question must not overwrite this one's
  const thumb = $("drop-content").querySelector(".thumb");
  let text = "", refusal = "";
  if (files.content && !thumb.hidden && thumb.naturalWidth && $("settings").checkValidity()) {
    const query = new URLSearchParams({ width: thumb.naturalWidth, height: thumb.naturalHeight, ...settingValues() });
    try {
      const answer = await api(`/api/estimate?${query}`);
      text = `${answer.size[0]} × ${answer.size[1]} px` +
        (answer.seconds === null ? "" : `, about ${formatTime(answer.seconds)} at this server's pace`);
      if (answer.soft) {  // as the command line's note says: a small photo enlarged this much is blurred
        const times = Math.max(...answer.size) / Math.max(thumb.naturalWidth, thumb.naturalHeight);
        text += `. The photo is ${thumb.naturalWidth} × ${thumb.naturalHeight} px: enlarged ${times.toFixed(1)} ` +
          "times, it will look soft";
      }
    } catch (error) {  // a hint only: without an answer, none; but a photo the server refuses is said now
      if (error.status === 400) text = refusal = error.message;
    }
  }
  if (asked !== estimate.asked) return;
  $("estimate").textContent = text;
  estimate.refusal = refusal;
  updatePaintButton();
}

// ---------------------------------------------------------------------------------------------
// Painting: submit, follow progress, cancel

async function paint() {
  hideMessage();
  if (!$("settings").reportValidity()) return;  // the browser points at the field that is out of range
  const form = new FormData();
  form.append("content", files.content);
  form.append("style", files.style);
  for (const [name, value] of Object.entries(settingValues())) form.append(name, value);
  $("paint").disabled = true;
  $("paint").textContent = "Uploading…";
  try {
    const job = await api("/api/jobs", { method: "POST", body: form });
    follow(job, true);
  } catch (err) {
    const field = faultyControl(err);
    const kind = field && field.id.endsWith("-file") ? field.id.replace("-file", "") : null;
    if (kind) clearChoice(kind);  // the server cannot read it: sending it again would fail again
    showMessage(err.message, "error", true, field);
    updatePaintButton();
    (field || $("paint")).focus();  // where the problem is, not <body>
  } finally {
    $("paint").textContent = "Paint";
  }
}

// The control a server's error is about: the setting it gives (an image too small at this Size is no
// fault of the image's) or starts with ("max_size must be …"), or an image ("photo 'x.png': …",
// "painting 'y.jpg': …"); null for the others.
function faultyControl(err) {
  const setting = err.setting || state.settings.settings.find((s) => err.message.startsWith(`${s.name} `))?.name;
  if (setting) return $(`setting-${setting}`);
  if (err.message.startsWith("photo ")) return $("content-file");
  return err.message.startsWith("painting ") ? $("style-file") : null;
}

// ``pressed``: the user's Paint or Resume started it (not a page opened on a run in progress).
function follow(job, pressed = false) {
  if (state.source) state.source.close();
  state.active = job;
  emptyStage();  // not the last picture: this job's own previews replace the placeholder
  state.view = job.id;
  state.total = job.total;
  $("cancel").hidden = false;
  $("cancel").disabled = false;
  $("cancel").textContent = "Cancel";
  $("result-info").textContent = jobTitle(job);  // which painting this is: it may be another tab's
  showReuse(job);
  // Paint and Resume disable themselves when pressed: focus goes to Cancel, not <body>, without a jump.
  // Not on opening the page, where Space, meant to scroll, would cancel the run.
  if (pressed && (document.activeElement === $("paint") || document.activeElement === document.body)) {
    $("cancel").focus({ preventScroll: true });
  }
  if (pressed) revealStage();  // not on opening the page, nor when another tab's run is picked up
  render(job);
  drawChart();
  updatePaintButton();
  refreshGallery();  // a resumed job's card leaves until it has a new picture
  const source = new EventSource(job.urls.events);
  state.source = source;
  const onEvent = (e) => {
    const data = JSON.parse(e.data);
    if (data.points_from === 0) state.points = [];
    state.points.push(...data.points);
    state.active = data;
    if (e.type === "done") {
      source.close();
      state.source = null;
      finished(data);
    } else if (state.view === data.id) {
      render(data);
    }
  };
  source.addEventListener("progress", onEvent);
  source.addEventListener("done", onEvent);
  source.onerror = () => {
    setStatus("No news from the server…", "");
    showMessage(source.readyState === EventSource.CLOSED ? "Lost the connection to the server."
      : "Lost the connection to the server; trying again…", source.readyState === EventSource.CLOSED ? "error" : "info");
  };
  source.onopen = () => { if ($("message").classList.contains("info")) hideMessage(); };
}

async function cancel() {
  if (!state.active) return;
  $("cancel").disabled = true;
  $("cancel").textContent = "Cancelling…";
  try {
    await api(state.active.urls.cancel, { method: "POST" });
  } catch (err) {
    showMessage(err.message);
    $("cancel").disabled = false;  // it can be pressed again once the server answers
    $("cancel").textContent = "Cancel";
  }
}

// A painting stopped part way goes on from its picture, where it stopped.
async function resume() {
  hideMessage();
  $("resume").disabled = true;
  try {
    follow(await api(`/api/jobs/${state.view}/resume`, { method: "POST" }), true);
  } catch (err) {
    showMessage(err.message);
  } finally {
    $("resume").disabled = false;
  }
}

// Scroll the stage into view unless its top half is on the screen already.
function revealStage() {
  const stage = $("stage").getBoundingClientRect();
  if (stage.top < 0 || stage.top > window.innerHeight / 2) $("stage").scrollIntoView({ block: "start" });
}

function render(job) {
  state.total = job.total;
  const fraction = job.total ? job.step / job.total : 0;
  if (job.status === "queued") {
    setStatus("Waiting for the worker…", "");
    announce("Waiting for the worker");
  } else if (job.status === "running" && job.step === 0) {
    setStatus("Preparing: reading the images and the network…", "");
    announce("Preparing the painting");
  } else if (job.status === "running") {
    state.eta = job.eta >= 0.05 ? { seconds: job.eta, at: performance.now() } : null;
    setStatus(`Step ${job.step} of ${job.total} · loss ${formatNumber(job.loss)}`, etaText());
    const tenths = Math.floor(fraction * 10);
    if (tenths > state.announced) {  // every tenth of the run: often enough to follow, not a step's chatter
      state.announced = tenths;
      announce(`${tenths * 10} % painted${etaText() ? `, ${etaText()}` : ""}`);
    }
  }
  setBar(fraction, "", job.total ? `step ${job.step} of ${job.total}` : "");
  if (job.preview_step > state.previewStep) {
    state.previewStep = job.preview_step;
    showImage(`${job.urls.preview}?v=${job.preview_step}`);
  }
  drawChart();
}

// The time left, counted down between the server's events (a step at a large size takes seconds).
function etaText() {
  if (!state.eta) return "";
  const left = state.eta.seconds - (performance.now() - state.eta.at) / 1000;
  return left >= 0.05 ? `about ${formatTime(left)} left` : "";
}

function countDown() {
  if (state.eta && busy() && state.active.status === "running") $("eta").textContent = etaText();
}

function finished(job) {
  state.eta = null;
  state.view = job.id;
  // Cancel disables itself when pressed, so focus may already have fallen to <body>.
  const hadFocus = document.activeElement === $("cancel") || document.activeElement === document.body;
  $("cancel").hidden = true;
  if ($("message").classList.contains("info")) hideMessage();  // "a painting is in progress" is over
  updatePaintButton();
  showJob(job, state.points);
  announce($("status-text").textContent);
  updateEstimate();  // at the pace of the painting just made
  if (hadFocus) (job.has_result ? $("download") : $("paint")).focus({ preventScroll: true });  // not lost to <body>
  refreshGallery();
}

function showJob(job, points) {
  state.view = job.id;
  showReuse(job);
  state.points = points;
  state.total = job.total;
  const took = `${steps(job.step)} in ${formatTime(job.elapsed)}`;
  if (job.status === "done") {
    const why = job.stop_reason === "tolerance" ? " (the loss stopped falling)" : "";
    setStatus(`Finished: ${took}${why}`, "");
    setBar(1, "done");
  } else if (job.status === "cancelled") {
    // With an error, the server's stop or a resume that could not go on, not the user's Cancel.
    const stopped = job.error ? "Stopped" : "Cancelled";
    setStatus(job.has_result ? `${stopped} after ${took}; kept the best image so far` : `${stopped} before it started`, "");
    setBar(job.total ? job.step / job.total : 0, "stopped");
    if (job.error) showMessage(capitalized(job.error), "info");
  } else if (job.status === "failed") {
    setStatus(`Failed: ${job.error || "the job failed"}`, "");
    setBar(1, "failed");
    $("placeholder").textContent = "Nothing was painted.";
  }
  if (job.has_result) {
    showImage(`${job.urls.result}?v=${job.id}-${job.step}`);
    const download = $("download");
    download.href = `${job.urls.result}?download=1`;
    download.setAttribute("download", "");
    download.hidden = false;
    $("result-info").textContent = jobTitle(job) +
      (job.size ? ` · ${job.size[0]} × ${job.size[1]} px · PNG with settings embedded` : "");
  } else {
    $("download").hidden = true;
    $("result-info").textContent = jobTitle(job);
    $("preview").hidden = true;  // a preview of a run that kept nothing
    $("placeholder").hidden = false;
  }
  $("resume").hidden = !job.resumable;
  for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", card.dataset.id === job.id);
  drawChart();
}

// The stage image: load off-screen first so the picture never flickers; keep only the newest request.
function showImage(src) {
  if (state.previewLoading) { state.previewPending = src; return; }
  state.previewLoading = true;
  const loader = new Image();
  const next = () => {
    state.previewLoading = false;
    const pending = state.previewPending;
    state.previewPending = null;
    if (pending) showImage(pending);
  };
  loader.onload = () => {
    const img = $("preview");
    img.src = src;
    img.classList.toggle("small", loader.naturalWidth < 320);
    img.hidden = false;
    $("placeholder").hidden = true;
    next();
  };
  loader.onerror = next;
  loader.src = src;
}

// No painting on the stage: no picture, loss curve, bar, Download, Resume or Cancel, no card selected.
function emptyStage() {
  Object.assign(state, { view: null, points: [], total: 0, previewStep: 0, previewPending: null, eta: null,
    announced: -1 });
  $("preview").hidden = true;
  $("placeholder").textContent = "Your painting appears here as it takes shape.";
  $("placeholder").hidden = false;
  for (const id of ["download", "resume", "cancel", "reuse"]) $(id).hidden = true;
  state.shown = null;
  $("result-info").textContent = "";
  setBar(0, "");
  drawChart();
  for (const card of document.querySelectorAll(".card")) card.classList.remove("selected");
}

// For new images: no status, picture, Download or Resume of an earlier painting.
function clearStage() {
  if (!state.view) return;
  emptyStage();
  updatePaintButton();  // which says what to do next
}

// "Use its settings" for the painting on the stage (a job from an older server may record none).
function showReuse(job) {
  state.shown = job;
  $("reuse").hidden = !job.config;
}

const capitalized = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function setStatus(text, eta) {
  $("status-text").textContent = text;
  $("eta").textContent = eta;
}

// ``text``: what a screen reader says of the bar ("step 3 of 100"); by default its percentage.
function setBar(fraction, kind, text = "") {
  const pct = Math.max(0, Math.min(100, fraction * 100));
  $("bar-fill").style.width = `${pct}%`;
  $("bar").setAttribute("aria-valuenow", pct.toFixed(0));
  $("bar").setAttribute("aria-valuetext", text || `${pct.toFixed(0)} %`);
  $("bar").className = `bar ${kind}`;
}

// What a screen reader hears (#announce, a polite status): a run's milestones, not each step's numbers.
function announce(text) { $("announce").textContent = text; }

// Errors, and answers to what the user just did (reveal), are scrolled into sight; background notes are
// not. An error is an alert, a note a status (it does not interrupt); ``field``, the control at fault,
// is marked invalid and described by the message until it is hidden.
function showMessage(text, kind = "error", reveal = kind === "error", field = null) {
  hideMessage();
  const box = $("message");
  box.setAttribute("role", kind === "info" ? "status" : "alert");
  box.textContent = text;
  box.className = `message ${kind === "info" ? "info" : ""}`;
  box.hidden = false;
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", `${field.getAttribute("aria-describedby") || ""} message`.trim());
  }
  const shown = box.getBoundingClientRect();  // in the sticky bar it is often on the screen already
  if (reveal && (shown.top < 0 || shown.bottom > window.innerHeight)) box.scrollIntoView({ block: "nearest" });
}

function hideMessage() {
  $("message").hidden = true;
  delete $("message").dataset.about;
  for (const field of document.querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    const rest = field.getAttribute("aria-describedby").replace(/\s*\bmessage$/, "");
    if (rest) field.setAttribute("aria-describedby", rest); else field.removeAttribute("aria-describedby");
  }
}

// ---------------------------------------------------------------------------------------------
// Gallery: every finished result kept by the server

async function refreshGallery() {
  let jobs = [];
  try {
    jobs = (await api("/api/jobs")).jobs;
  } catch (err) {
    showMessage(`Cannot load the gallery: ${err.message}; trying again…`, "info");
    setTimeout(refreshGallery, 5000);  // the server may be restarting
    return jobs;
  }
  if ($("message").textContent.startsWith("Cannot load the gallery")) {
    hideMessage();
    if (!busy()) catchUp(jobs, false);  // the server is back
  }
  const focusedCard = document.activeElement && document.activeElement.closest(".card");
  const focused = focusedCard && document.activeElement.classList.contains("title") ? focusedCard.dataset.id : null;
  const gallery = $("gallery");
  gallery.replaceChildren();
  for (const job of jobs.filter((j) => j.has_result)) {
    const card = document.createElement("figure");
    card.className = "card";
    card.dataset.id = job.id;
    card.classList.toggle("selected", job.id === state.view);
    const img = document.createElement("img");
    img.src = `${job.urls.result}?v=${job.id}-${job.step}`;
    img.alt = `${job.content_name} in the style of ${job.style_names.join(", ")}`;
    img.loading = "lazy";
    const caption = document.createElement("figcaption");
    caption.className = "caption";
    const title = document.createElement("button");  // the card's control: it opens the painting
    title.type = "button";
    title.className = "title";
    title.textContent = jobTitle(job);
    // Repeated runs of one pair differ in their settings and time: the tooltip tells them apart.
    title.title = `${title.textContent}\nstyle strength ${job.config.style_weight} · ${steps(job.config.iterations)}` +
      ` · ${new Date(job.created * 1000).toLocaleString()}`;
    const meta = document.createElement("div");
    meta.className = "meta";
    const info = document.createElement("span");
    info.textContent = `${job.size ? job.size[0] + "×" + job.size[1] : ""} · ${steps(job.step)}`;
    if (job.status === "cancelled") {  // with an error: the server's stop, not the user's Cancel (as showJob says)
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = job.error ? "stopped" : "cancelled";
      info.append(" ", badge);
    }
    const link = document.createElement("a");
    link.href = `${job.urls.result}?download=1`;
    link.setAttribute("download", "");
    link.textContent = "Download";
    link.setAttribute("aria-label", `Download ${title.textContent}`);
    link.addEventListener("click", (e) => e.stopPropagation());
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${title.textContent}`);
    remove.addEventListener("click", (e) => { e.stopPropagation(); deleteJob(job); });
    const actions = document.createElement("span");
    actions.className = "card-actions";
    actions.append(link, remove);
    meta.append(info, actions);
    caption.append(title, meta);
    card.append(img, caption);
    title.setAttribute("aria-label", `Open ${title.textContent}`);
    card.addEventListener("click", () => openJob(job.id));  // the button's click, and a mouse's anywhere on it
    gallery.append(card);
  }
  $("gallery-empty").hidden = gallery.children.length > 0;
  const again = focused && gallery.querySelector(`.card[data-id="${focused}"] .title`);
  if (again) again.focus();  // rebuilt: the card the keyboard was on keeps the focus
  return jobs;
}

// Remove a painting from the gallery and the server's data folder, once the user confirms.
async function deleteJob(job) {
  if (!window.confirm(`Delete “${jobTitle(job)}” (${steps(job.step)})? Its picture is removed from the server.`)) return;
  try {
    await api(`/api/jobs/${job.id}`, { method: "DELETE" });
  } catch (err) {
    showMessage(err.message);
    return;
  }
  if (state.view === job.id) clearStage();
  const cards = [...document.querySelectorAll(".card")];
  const next = cards[cards.findIndex((c) => c.dataset.id === job.id) + 1];
  await refreshGallery();
  // The focus was on the deleted card's button: it goes to the next card, or to the gallery's heading.
  const nextTitle = next && document.querySelector(`.card[data-id="${next.dataset.id}"] .title`);
  (nextTitle || $("gallery-heading")).focus();
}

async function openJob(id) {
  if (busy() && state.active.id !== id) {
    showMessage("A painting is in progress; its result appears here when it is done.", "info", true);
    return;
  }
  try {
    const job = await api(`/api/jobs/${id}`);
    hideMessage();
    showJob(job, job.points);
    revealStage();
    $("stage").focus({ preventScroll: true });  // where the keyboard's user now looks, announced below
    announce(`${jobTitle(job)}: ${$("status-text").textContent}`);
  } catch (err) {
    showMessage(err.message);
  }
}

const stem = (name) => name.replace(/\.[^.]+$/, "");
const jobTitle = (job) => `${stem(job.content_name)} × ${job.style_names.map(stem).join(" + ")}`;

// ---------------------------------------------------------------------------------------------
// The loss curve, drawn on a canvas: log-scale loss against step, total and its two parts

const SERIES = [
  { index: 1, name: "total", color: "#2d4fd6", width: 2 },
  { index: 3, name: "style", color: "#d9822b", width: 1.5 },
  { index: 2, name: "content", color: "#2e9e5b", width: 1.5 },
];

function drawChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  const points = state.points;
  canvas.setAttribute("aria-label", chartSummary(points));
  const values = points.flatMap((p) => SERIES.map((s) => p[s.index])).filter((v) => v > 0 && Number.isFinite(v));
  if (!values.length) {
    ctx.fillStyle = "#6b6f76";
    ctx.textAlign = "center";
    ctx.fillText("The loss curve appears here while painting", width / 2, height / 2);
    return;
  }
  const left = 46, right = 10, top = 22, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  let lo = Math.floor(Math.log10(Math.min(...values)));
  let hi = Math.ceil(Math.log10(Math.max(...values)));
  if (hi === lo) hi = lo + 1;
  const maxStep = Math.max(state.total || 1, points.length ? points[points.length - 1][0] : 1);
  const x = (step) => left + (plotW * (step - 1)) / Math.max(1, maxStep - 1);
  const y = (v) => top + plotH * (1 - (Math.log10(v) - lo) / (hi - lo));

  // Grid: one line per decade, five step ticks.
  ctx.strokeStyle = "#ece9e3";
  ctx.fillStyle = "#6b6f76";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const every = Math.max(1, Math.ceil((hi - lo) / 5));
  for (let k = lo; k <= hi; k += every) {
    const yy = Math.round(y(10 ** k)) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(width - right, yy); ctx.stroke();
    ctx.fillText(formatPower(k), left - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const step of niceTicks(maxStep)) {
    const xx = Math.round(x(step)) + 0.5;
    ctx.beginPath(); ctx.moveTo(xx, top); ctx.lineTo(xx, top + plotH); ctx.stroke();
    const half = ctx.measureText(String(step)).width / 2;
    ctx.fillText(String(step), Math.min(xx, width - half - 1), top + plotH + 5);  // the last one not clipped
  }

  for (const s of SERIES) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let started = false;
    for (const p of points) {
      const v = p[s.index];
      if (!(v > 0)) { started = false; continue; }
      if (started) ctx.lineTo(x(p[0]), y(v)); else ctx.moveTo(x(p[0]), y(v));
      started = true;
    }
    ctx.stroke();
    if (points.length === 1 && points[0][s.index] > 0) {  // one step: a dot, not an empty chart
      ctx.fillStyle = s.color;
      ctx.beginPath(); ctx.arc(x(points[0][0]), y(points[0][s.index]), 3, 0, 2 * Math.PI); ctx.fill();
    }
  }

  // Legend and title.
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  let lx = width - right;
  for (const s of [...SERIES].reverse()) {
    const w = ctx.measureText(s.name).width;
    lx -= w;
    ctx.fillStyle = "#4a4e55";
    ctx.fillText(s.name, lx, 10);
    lx -= 22;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2.5;
    ctx.beginPath(); ctx.moveTo(lx, 10); ctx.lineTo(lx + 16, 10); ctx.stroke();
    lx -= 14;
  }
  const title = "loss (log scale) by step";
  ctx.fillStyle = "#1f2328";
  if (left + ctx.measureText(title).width + 12 <= lx) ctx.fillText(title, left, 10);  // narrow: the legend only
}

// The chart in words, for a screen reader: where the total loss began and where it is now.
function chartSummary(points) {
  if (!points.length) return "Loss curve: no painting yet";
  const [first, last] = [points[0], points[points.length - 1]];
  return `Loss curve: the total loss went from ${formatNumber(first[1])} at step ${first[0]} ` +
    `to ${formatNumber(last[1])} at step ${last[0]}`;
}

function niceTicks(maxStep) {
  const raw = maxStep / 5;
  const power = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || power * 10;
  const ticks = [1];
  for (let t = step; t <= maxStep; t += step) ticks.push(t);
  return ticks;
}

function formatPower(k) {  // 10⁻², 10⁰, 10⁴: one style for every decade
  const sup = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
  return "10" + String(k).split("").map((c) => sup[c]).join("");
}

function formatNumber(v) {
  if (v === null || v === undefined) return "–";
  if (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-2 && v !== 0)) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
}

function steps(count) {  // "1 step", "12 steps"
  return `${count} step${count === 1 ? "" : "s"}`;
}

function formatTime(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")} min`;
}
