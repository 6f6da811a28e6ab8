// The chat page's script: picks and loads a model (URL, default or file) with a progress bar,
// keeps one conversation (each turn prefills only what the KV cache lacks; "New chat" forgets it),
// streams replies token by token, stops them, and shows the backend and live metrics.
// Models too large for wasm32 load into the wasm64 (Memory64) build of the same API, which
// scripts/build-page.sh puts in dist/wasm64/ and this script imports on first need.
// Query parameters preset the controls (backend, wasm, max_tokens, temperature, url), which the
// browser test uses. `window.sluicePage` exposes the engine and last outcome for tests and the
// console; `body[data-state]` says what the page is doing.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const page = { engine: null, lastResult: null, lastError: null, progress: [], pieces: [] };
window.sluicePage = page;

// From this size a model goes to wasm64: wasm32's 4 GiB must also hold the engine's buffers.
const WASM64_FROM_BYTES = 3 * 1024 ** 3;
let wasm64Bindings = null; // a promise of the wasm64 module's exports, once asked for

// Whether the browser runs 64-bit memories: validates a module holding only an i64 memory
// (a `new WebAssembly.Memory({address: "i64"})` is silently 32-bit where unsupported).
function hasMemory64() {
  const module = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 4, 1]);
  try {
    return WebAssembly.validate(module);
  } catch {
    return false;
  }
}

// The model's size before loading it: the file's, the cached copy's, else the server's
// Content-Length (a HEAD request); null when unknown.
async function modelSize(how) {
  if (how.file) return how.file.size;
  const absolute = new URL(how.url, location.href).href;
  try {
    const cached = await window.wasmBindings.Engine.cachedModels();
    const hit = cached.find((m) => m.url === absolute);
    if (hit) return hit.bytes;
    const head = await fetch(absolute, { method: "HEAD", cache: "no-store" });
    const length = Number(head.headers.get("content-length"));
    return head.ok && length > 0 ? length : null;
  } catch {
    return null;
  }
}

// The API build to load `how` with: wasm64 when asked for, or (auto) when the model is too large
// for wasm32 and the browser has Memory64; wasm32 otherwise.
async function bindingsFor(how) {
  const choice = $("wasm-choice").value;
  let want64 = choice === "64";
  if (choice === "auto") {
    const size = await modelSize(how);
    want64 = size != null && size >= WASM64_FROM_BYTES;
    if (want64 && !hasMemory64()) {
      if (size >= 4 * 1024 ** 3) {
        throw new Error(`this model (${mb(size)}) needs wasm64 (Memory64), which this browser lacks`);
      }
      want64 = false; // it may still fit in wasm32
    }
  }
  if (!want64) return window.wasmBindings;
  if (!hasMemory64()) throw new Error("this browser lacks Memory64, which the wasm64 build needs");
  wasm64Bindings ??= (async () => {
    const module = await import("./wasm64/sluice_www.js").catch((e) => {
      throw new Error(`the page has no wasm64 build (scripts/build-page.sh makes it): ${e?.message ?? e}`);
    });
    await module.default({ module_or_path: new URL("./wasm64/sluice_www_bg.wasm", import.meta.url) });
    return module;
  })();
  try {
    return await wasm64Bindings;
  } catch (e) {
    wasm64Bindings = null; // a later load may try again
    throw e;
  }
}

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === "loading" || state === "generating";
  for (const id of ["load-default", "load-url", "file", "clear-cache", "backend-choice", "wasm-choice"]) {
    $(id).disabled = busy;
  }
  $("send").disabled = state !== "ready";
  $("stop").disabled = state !== "generating";
  $("new-chat").disabled = state !== "ready";
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

const mb = (bytes) => (bytes == null ? "?" : (bytes / 1048576).toFixed(1) + " MiB");
const secs = (s) => (s == null ? "–" : s.toFixed(2) + " s");
const rate = (r) => (r == null ? "–" : r.toFixed(1) + " tok/s");

function onProgress({ phase, loaded, total }) {
  page.progress.push(phase);
  const bar = $("progress");
  if (total) {
    bar.value = loaded / total;
  } else {
    bar.removeAttribute("value"); // indeterminate
  }
  const verb = {
    download: "Downloading",
    cache: "Reading from the cache",
    store: "Storing in the cache",
    file: "Reading the file",
    load: "Loading onto the backend",
  }[phase] ?? phase;
  $("progress-text").textContent = `${verb}: ${mb(loaded)} of ${mb(total)}`;
}

function showBackend(engine) {
  const badge = $("backend");
  badge.textContent = engine.backend;
  badge.title = engine.fallbackReason ?? "";
  badge.classList.toggle("fallback", engine.fallbackReason != null);
  if (engine.fallbackReason) badge.textContent += ` (fallback: ${engine.fallbackReason})`;
}

function showMetrics() {
  const m = page.engine?.metrics();
  if (!m) return;
  const rows = [
    ["model", `${m.model_name ?? "?"} (${m.architecture}, ${(m.parameters / 1e6).toFixed(0)} M params, ${m.layers} layers)`],
    ["backend", m.backend],
    ["source", m.source + (m.url ? ` — ${m.url}` : "")],
    ["size", mb(m.model_bytes)],
    ["fetch", secs(m.fetch_s)],
    ["load", secs(m.load_s)],
    ["cache", m.cache_status + (m.cache_error ? ` — ${m.cache_error}` : "")],
    ["context", String(m.context)],
    ["memory", `${mb(m.memory_bytes)} of ${m.wasm} memory; ${mb(m.device_bytes)} of weights on the backend`],
    ["weights", m.prefetch.mode === "streaming"
      ? `streaming: ${m.prefetch.passes} passes, ${mb(m.prefetch.bytes_moved)} moved, ${m.prefetch.stalls} stalls`
      : "resident"],
    ["prompt", m.last_prompt_tokens == null ? "–" : `${m.last_prompt_tokens} tokens at ${rate(m.last_prefill_tok_s)}`],
    ["decode", m.last_generated_tokens == null ? "–" : `${m.last_generated_tokens} tokens at ${rate(m.last_decode_tok_s)}`],
    ["reused", m.last_tokens_reused == null ? "–" : `${m.last_tokens_reused} tokens from the KV cache`],
    ["prefilled", m.last_tokens_prefilled == null ? "–" : `${m.last_tokens_prefilled} tokens computed`],
    ["conversation", `${m.conversation_messages} messages`],
  ];
  const dl = $("metrics");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.metric = k;
    dl.append(dt, dd);
  }
}

async function load(how) {
  if (page.engine) {
    page.engine.free(); // the old model's memory goes before the new one arrives
    page.engine = null;
  }
  page.lastError = null;
  page.progress = [];
  setState("loading");
  setStatus(how.file ? `Loading ${how.file.name}…` : `Loading ${how.url}…`);
  const options = { backend: $("backend-choice").value, cache: $("use-cache").checked };
  const started = performance.now();
  try {
    const bindings = await bindingsFor(how);
    const { Engine } = bindings;
    page.engine = how.file
      ? await Engine.loadFile(how.file, options, onProgress)
      : await Engine.loadUrl(how.url, options, onProgress);
    $("arch").textContent = bindings.wasmArch();
  } catch (e) {
    page.lastError = String(e?.message ?? e);
    setStatus(`Could not load the model: ${page.lastError}`, true);
    setState("error");
    return;
  }
  const m = page.engine.metrics();
  showBackend(page.engine);
  showMetrics();
  const took = ((performance.now() - started) / 1000).toFixed(1);
  $("progress").value = 1;
  $("progress-text").textContent = `Loaded ${mb(m.model_bytes)}`;
  let text = `Ready: ${m.model_name ?? "model"} from ${m.source} in ${took} s.`;
  if (m.cache_error) text += ` Cache: ${m.cache_error}`;
  setStatus(text, m.cache_status === "failed");
  setState("ready");
}

function addMessage(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

async function ask(event) {
  event.preventDefault();
  if (document.body.dataset.state !== "ready") return;
  const prompt = $("prompt").value.trim();
  if (!prompt || !page.engine) return;
  $("prompt").value = "";
  addMessage("user", prompt);
  const reply = addMessage("assistant", "");
  reply.classList.add("streaming");
  const options = {
    max_tokens: Number($("max-tokens").value) || 128,
    temperature: Number($("temperature").value) || 0,
  };
  setState("generating");
  setStatus("Generating…");
  page.lastResult = null;
  page.lastError = null;
  page.pieces = [];
  try {
    let first = null;
    page.lastResult = await page.engine.chat(prompt, options, (piece) => {
      page.pieces.push(piece);
      reply.textContent += piece;
      reply.scrollIntoView({ block: "end" });
      showLiveRate(page.pieces.length, (first ??= performance.now()));
    });
    const r = page.lastResult;
    let done = `Done (${r.stop_reason}): ${r.generated_tokens} tokens at ${rate(r.decode_tok_s)}; ` +
      `${r.tokens_reused} prompt tokens reused, ${r.tokens_prefilled} prefilled.`;
    if (r.dropped_messages) done += ` The context was full: the ${r.dropped_messages} oldest messages were dropped.`;
    setStatus(done);
  } catch (e) {
    page.lastError = String(e?.message ?? e);
    setStatus(`Generation failed: ${page.lastError}`, true);
  }
  reply.classList.remove("streaming");
  showMetrics();
  setState("ready");
}

// While a reply streams: tokens so far and the decode rate since the first one.
function showLiveRate(count, firstAt) {
  const seconds = (performance.now() - firstAt) / 1000;
  const cell = document.querySelector('#metrics dd[data-metric="decode"]');
  if (cell) cell.textContent = `${count} tokens so far` + (count > 1 ? ` at ${rate((count - 1) / seconds)}` : "");
}

// Forgets the conversation (the engine's and the page's), keeping the loaded model.
function newChat() {
  if (!page.engine || document.body.dataset.state !== "ready") return;
  page.engine.resetChat();
  $("messages").replaceChildren();
  showMetrics();
  setStatus("New chat.");
}

async function clearCache() {
  const { Engine } = window.wasmBindings;
  try {
    const had = await Engine.clearCache();
    setStatus(had ? "Cleared the model cache." : "The model cache was empty.");
  } catch (e) {
    setStatus(`Could not clear the cache: ${e?.message ?? e}`, true);
  }
}

async function start() {
  const { adapterName, wasmArch } = window.wasmBindings;
  $("arch").textContent = wasmArch();
  for (const [param, id] of [["backend", "backend-choice"], ["wasm", "wasm-choice"], ["max_tokens", "max-tokens"],
    ["temperature", "temperature"], ["url", "url"]]) {
    if (params.has(param)) $(id).value = params.get(param);
  }
  $("load-default").onclick = () => load({ url: "models/default.gguf" });
  $("load-url").onclick = () => load({ url: $("url").value.trim() });
  $("file").onchange = () => {
    const file = $("file").files[0];
    $("file").value = ""; // picking the same file again must fire another change
    if (file) load({ file });
  };
  $("clear-cache").onclick = clearCache;
  $("ask").onsubmit = ask;
  $("stop").onclick = () => page.engine?.stop();
  $("new-chat").onclick = newChat;
  $("prompt").onkeydown = (e) => {
    if (e.key === "Enter" && !e.shiftKey) ask(e);
  };
  setState("idle");
  setStatus("Pick a model: the default, a URL or a GGUF file.");
  try {
    $("backend").textContent = `available: ${await adapterName()}`;
  } catch (e) {
    $("backend").textContent = "available: cpu only";
    $("backend").title = String(e?.message ?? e);
  }
}

// Trunk's loader sets window.wasmBindings and then fires this event (it may already have).
if (window.wasmBindings) {
  start();
} else {
  addEventListener("TrunkApplicationStarted", start, { once: true });
}
