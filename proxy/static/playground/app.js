// The ProgImage playground: upload, browse, compose operations, preview, copy a snippet.
import { imageUrl, MODES, srcset } from "./progimage-url.js";

const $ = (id) => document.getElementById(id);
// What Chromium sends for <img>: so fmt/auto previews what a page would get.
const IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const PAGE_SIZE = 12;
const BASE = location.pathname.replace(/\/+$/, "");  // "" at the root, "/prefix" behind one
const form = $("ops");
const state = {
  service: {}, selected: null, cursors: [null], page: 0, objectUrl: null, seq: 0, timer: 0,
};

// --- service description, token

async function describe() {
  try {
    const response = await fetch(`${BASE}/`, { headers: { Accept: "application/json" } });
    state.service = await response.json();
  } catch {
    state.service = {};
  }
  if (state.service.signed_urls) {
    notice("This server requires signed URLs (signing.key): derived images need a signature " +
      "from `progimage url` or proxy.links.url(key=…), so the preview shows originals only.");
  }
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = false;
}

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

$("token").value = sessionStorage.getItem("progimage-token") ?? "";
$("token").addEventListener("change", () => sessionStorage.setItem("progimage-token", $("token").value));

// --- upload

async function upload(file) {
  if (!file) return;
  setStatus(`Uploading ${file.name} (${formatBytes(file.size)})…`);
  let response, body;
  try {
    response = await fetch(`${BASE}/images`, { method: "PUT", body: file, headers: authHeaders() });
    body = await response.json();
  } catch (error) {
    setStatus(`Upload failed: ${error}`, true);
    return;
  }
  if (!response.ok) {
    setStatus(`${response.status} ${body.title ?? ""}: ${body.detail ?? ""}`, true);
    return;
  }
  setStatus(`${response.status === 201 ? "Stored" : "Already stored"} ${body.id} — ` +
    `${body.format} ${body.width}×${body.height}, ${formatBytes(body.size)}`);
  state.selected = body.id;
  state.cursors = [null];
  state.page = 0;
  await loadGallery();
  schedulePreview(0);
}

function setStatus(text, bad = false) {
  const status = $("upload-status");
  status.textContent = text;
  status.classList.toggle("bad", bad);
}

$("file").addEventListener("change", (event) => {
  upload(event.target.files[0]);
  event.target.value = "";  // choosing the same file again (say, after adding a token) uploads it
});
const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  upload(event.dataTransfer.files[0]);
});

// --- gallery, paged with ?limit=&after=

async function loadGallery() {
  const after = state.cursors[state.page];
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("after", after);
  let listing;
  try {
    const response = await fetch(`${BASE}/images?${query}`);
    listing = await response.json();
    if (!response.ok) throw new Error(listing.detail);
  } catch (error) {
    setStatus(`Cannot list images: ${error.message ?? error}`, true);
    return;
  }
  state.cursors[state.page + 1] = listing.next;
  const gallery = $("gallery");
  gallery.replaceChildren(...listing.images.map(galleryItem));
  if (!state.selected && listing.images.length) select(listing.images[0].id);
  $("prev").disabled = state.page === 0;
  $("next").disabled = !listing.next;
  $("page-label").textContent = listing.images.length ? `page ${state.page + 1}` : "no images yet";
}

function galleryItem(image) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.id = image.id;
  button.title = `${image.id}\n${image.format} ${image.width}×${image.height}, ${formatBytes(image.size)}`;
  button.classList.toggle("selected", image.id === state.selected);
  const thumb = document.createElement("img");
  thumb.alt = image.id;
  thumb.loading = "lazy";
  thumb.src = state.service.signed_urls
    ? `${BASE}/images/${image.id}`
    : imageUrl(image.id, { thumbnail: "144x144", fmt: "auto" }, BASE);
  button.append(thumb);
  button.addEventListener("click", () => select(image.id));
  item.append(button);
  return item;
}

function select(id) {
  state.selected = id;
  for (const button of $("gallery").querySelectorAll("button")) {
    button.classList.toggle("selected", button.dataset.id === id);
  }
  schedulePreview(0);
}

$("prev").addEventListener("click", () => { state.page -= 1; loadGallery(); });
$("next").addEventListener("click", () => { state.page += 1; loadGallery(); });

// --- operations

// Number-like fields: empty or 0 means "not set", anything else goes to the server as typed
// (it answers a bad value with a problem detail, shown instead of the preview).
const NUMBERS = ["page", "trim", "rotate", "brightness", "contrast", "saturation", "hue",
  "blur", "sharpen", "pixelate", "palette", "maxbytes"];

function readOps() {
  const f = form.elements;
  const value = (name) => f[name].value.trim();
  const ops = {};
  const [width, height] = [value("width"), value("height")];
  if (value("mode") && (width || height)) {
    ops[value("mode")] = `${width}x${height}`;
    if (f.enlarge.checked) ops.enlarge = true;
    const focus = [value("focus-x"), value("focus-y")];
    if (focus.every((v) => v !== "")) ops.gravity = focus.map(fraction).join(",");
    else if (value("gravity")) ops.gravity = value("gravity");
    if (value("dpr") !== "1") ops.dpr = value("dpr");
  }
  for (const name of NUMBERS) {
    const text = value(name);
    if (text !== "" && Number(text) !== 0) ops[name] = text;
  }
  // Whole numbers are source pixels, numbers with a decimal point fractions: kept as typed.
  const crop = ["crop-x", "crop-y", "crop-w", "crop-h"].map(value);
  if (crop.every((v) => v !== "")) ops.crop = crop.join(",");
  for (const flag of ["flip", "flop", "grayscale", "lossless"]) if (f[flag].checked) ops[flag] = true;
  const padding = value("padding").replace(/\s+/g, "");
  if (padding && !/^0+(,0+)*$/.test(padding)) ops.padding = padding;
  const round = value("round").toLowerCase();
  if (round && round !== "0") ops.round = round;
  const bg = value("bg").replace("#", "").toLowerCase();
  if (bg && bg !== "ffffff") ops.bg = bg;
  if (value("q") !== "0") ops.q = value("q");
  for (const name of ["fmt", "meta", "download"]) if (value(name)) ops[name] = value(name);
  return ops;
}

// A focal-point coordinate always with a decimal point: `1` would be read as pixels, `1.0` not.
function fraction(text) {
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  const fixed = n.toFixed(6).replace(/0+$/, "");
  return fixed.endsWith(".") ? `${fixed}0` : fixed;
}

const signed = (v) => (Number(v) > 0 ? `+${v}` : v);
const OUTPUTS = {
  q: (v) => (v === "0" ? "default" : v), brightness: signed, contrast: signed, saturation: signed,
};

function showOutputs() {
  for (const [name, show] of Object.entries(OUTPUTS)) {
    $(`${name}-out`).textContent = show(form.elements[name].value);
  }
}

function schedulePreview(delay = 250) {
  clearTimeout(state.timer);
  state.timer = setTimeout(preview, delay);
}

form.addEventListener("input", () => {
  showOutputs();
  schedulePreview();
});
form.addEventListener("reset", () => setTimeout(() => {
  showOutputs();
  schedulePreview(0);
}));

// --- preview: fetch() so the headers can be read, then show the bytes through a blob URL

async function preview() {
  if (!state.selected) return;
  const ops = readOps();
  const url = state.service.signed_urls
    ? `${BASE}/images/${state.selected}`
    : imageUrl(state.selected, ops, BASE);
  const link = $("url");
  link.textContent = link.href = new URL(url, location.href).href;
  $("snippet").value = snippet(state.selected, ops);
  const seq = ++state.seq;
  const started = performance.now();
  let response, blob;
  try {
    response = await fetch(url, { headers: { Accept: IMAGE_ACCEPT } });
    blob = response.ok ? await response.blob() : null;
  } catch (error) {
    if (seq === state.seq) showError(`The request failed: ${error}`);
    return;
  }
  if (seq !== state.seq) return;  // a newer preview is on its way
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    showError(`${response.status} ${problem.title ?? response.statusText}: ${problem.detail ?? ""}`);
    return;
  }
  $("preview-error").hidden = true;
  const img = $("preview-img");
  const previous = state.objectUrl;
  state.objectUrl = URL.createObjectURL(blob);
  img.dataset.url = url;
  img.dataset.state = "loading";
  img.onload = () => {
    if (previous) URL.revokeObjectURL(previous);
    $("stat-dims").textContent = `${img.naturalWidth} × ${img.naturalHeight}`;
    img.dataset.state = "loaded";
  };
  img.onerror = () => showError("the browser could not decode the image");
  img.src = state.objectUrl;
  const header = (name) => response.headers.get(name) ?? "–";
  $("stat-bytes").textContent = formatBytes(blob.size);
  $("stat-type").textContent = header("Content-Type");
  $("stat-ms").textContent = `${Math.round(performance.now() - started)} ms`;
  $("stat-timing").textContent = header("Server-Timing");
  $("stat-etag").textContent = header("ETag");
}

function showError(text) {
  const error = $("preview-error");
  error.textContent = text;
  error.hidden = false;
  $("preview-img").dataset.state = "error";
  for (const id of ["stat-bytes", "stat-dims", "stat-type", "stat-ms", "stat-timing", "stat-etag"]) {
    $(id).textContent = "–";
  }
}

// --- the copy-paste <img srcset sizes> snippet

function snippet(id, ops) {
  const origin = location.origin + BASE;
  const mode = MODES.find((m) => ops[m]);
  const boxWidth = mode ? Number(ops[mode].split("x")[0]) : 0;
  const { dpr: _ignored, ...rest } = ops;
  const widths = boxWidth
    ? [...new Set([1, 1.5, 2, 3].map((k) => Math.round(boxWidth * k)))]
    : [320, 640, 960, 1280, 1920];
  const limit = state.service.limits?.max_output_dimension ?? 8192;
  const usable = widths.filter((w) => w <= limit);
  const sizes = boxWidth ? `(max-width: ${boxWidth}px) 100vw, ${boxWidth}px` : "100vw";
  const first = srcset(id, usable.slice(0, 1), rest, origin).replace(/ \d+w$/, "");
  return `<img src="${first}"\n     srcset="${srcset(id, usable, rest, origin).replaceAll(", ", ",\n             ")}"\n` +
    `     sizes="${sizes}"\n     alt="" loading="lazy" decoding="async">`;
}

// --- copying

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = button.id === "copy-url" ? "Copy" : "Copy snippet"; }, 1500);
}

$("copy-url").addEventListener("click", (event) => copy($("url").href, event.currentTarget));
$("copy-snippet").addEventListener("click", (event) => copy($("snippet").value, event.currentTarget));

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

await describe();
await loadGallery();
