// The chat page end to end in headless Chromium (playwright-core driving Debian's chromium):
// the Trunk build (www/dist) served by www/serve.mjs with the real SmolLM2 as the default model.
//   1. WebGPU: load by URL (downloaded, then stored in the model cache), chat, and the streamed
//      reply must equal the native engine's greedy reply, computed now with `sluice run`.
//   2. Reload, CPU: the same URL comes from the cache (the server sees no second download) and
//      the reply matches too; a second turn (stopped after two pieces) reuses the first turn's
//      KV cache, the metrics panel shows it, and New chat forgets the conversation.
//   3. With an empty cache, a download cut off halfway fails with a clear message and leaves no
//      cache entry: the next load of that URL downloads it again.
//      A damaged cache entry (shorter than its recorded length) is deleted and downloaded again;
//      a complete download that does not parse as a GGUF is not cached.
//   4. With the origin's storage quota overridden (DevTools protocol) below the model's size, the
//      cache refuses the model: the page says so and the model still generates.
//   5. A GGUF file picked in the file input loads.
// Saves a screenshot and prints its path. Needs SLUICE_TEST_MODEL_SMOLLM2 and a built www/dist.
//
//   node www/tests/chat.test.mjs   (scripts/test-web.sh runs it)

import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve } from "../serve.mjs";
import { CHROMIUM_ARGS, chat as chatWith, chromiumPath, loadModel, open, waitForState } from "./page.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const model = process.env.SLUICE_TEST_MODEL_SMOLLM2;
const dist = resolve(repo, process.env.SLUICE_PAGE_DIST ?? "www/dist");
const outDir = resolve(repo, process.env.SLUICE_PAGE_OUT ?? join(process.env.CARGO_TARGET_DIR ?? "target", "www-test"));
const PROMPT = "Write a haiku about rivers.";
// Short: SwiftShader decodes a few tokens a second at best.
const TOKENS = 12;
const LOAD_TIMEOUT = 240_000;
const GENERATE_TIMEOUT = 240_000;
const chat = (page) => chatWith(page, PROMPT);

let failures = 0;
function check(ok, what, detail = "") {
  console.log(`chat page test: ${ok ? "ok" : "FAIL"} - ${what}${detail ? `: ${detail}` : ""}`);
  if (!ok) failures++;
  return ok;
}


/** The native engine's greedy chat reply (the CLI prints it plus a newline). */
function nativeReply(maxTokens) {
  const out = execFileSync(
    "cargo",
    ["run", "--quiet", "--locked", "--profile", "test", "-p", "sluice-cli", "--", "run", "--model", model,
      "--chat", "--temp", "0", "-n", String(maxTokens), PROMPT],
    { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  return out.endsWith("\n") ? out.slice(0, -1) : out;
}

/** Model requests the server saw for `path`, split into complete and cut-off bodies. */
function downloads(server, path) {
  const hits = server.requests.filter((r) => r.path === path && r.method === "GET");
  return { complete: hits.filter((r) => r.complete).length, cut: hits.filter((r) => r.complete === false).length, all: hits.length };
}

async function main() {
  if (!model) {
    console.log("chat page test: skipped: SLUICE_TEST_MODEL_SMOLLM2 is not set");
    return;
  }
  statSync(join(dist, "index.html")); // a clear ENOENT when the page was not built
  mkdirSync(outDir, { recursive: true });
  const modelBytes = statSync(model).size;

  let t = Date.now();
  const expected = nativeReply(TOKENS);
  console.log(`chat page test: native greedy reply (${((Date.now() - t) / 1000).toFixed(1)} s): ${JSON.stringify(expected)}`);

  const userData = mkdtempSync(join(tmpdir(), "sluice-chat-test-"));
  // Half the model, served whole with its (shorter) Content-Length: complete, but cannot load.
  const broken = join(userData, "broken.gguf");
  copyFileSync(model, broken);
  truncateSync(broken, Math.floor(modelBytes / 2));
  const server = await serve({ root: dist, models: { "default.gguf": model, "broken.gguf": broken }, quiet: true });
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
  });
  const logs = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => logs.push(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`[pageerror] ${e.message}`));
    const query = { max_tokens: String(TOKENS), temperature: "0" };

    // 1. WebGPU, downloaded and stored.
    t = Date.now();
    await open(page, server.url, { ...query, backend: "webgpu" });
    const arch = await page.textContent("#arch");
    check(arch === "wasm32", "the badge shows the wasm build", arch);
    let load = await loadModel(page);
    const m1 = load.metrics;
    check(load.state === "ready", "webgpu: the default model loads by URL", load.error ?? load.status);
    if (!m1) throw new Error(`no engine: ${load.error}`);
    check(m1.backend.startsWith("webgpu"), "webgpu: backend", m1.backend);
    check(m1.source === "network" && m1.cache_status === "stored", "webgpu: downloaded and stored in the cache",
      `${m1.source}/${m1.cache_status} ${m1.cache_error ?? ""}`);
    check(m1.model_bytes === modelBytes, "webgpu: every byte arrived", `${m1.model_bytes} of ${modelBytes}`);
    check(["download", "store", "load"].every((p) => load.phases.includes(p)), "webgpu: progress phases", load.phases.join(","));
    const badge = await page.textContent("#backend");
    check(badge.startsWith("webgpu"), "the badge shows the backend", badge);
    let reply = await chat(page);
    check(reply.result?.text === expected, "webgpu: the streamed reply equals the native greedy reply",
      `${JSON.stringify(reply.result?.text)} ${reply.error ?? ""}`);
    check(reply.shown === expected, "webgpu: the page shows the reply", JSON.stringify(reply.shown));
    check(reply.pieces.length >= reply.result?.generated_tokens && reply.pieces.length > 1 && reply.pieces.join("") === expected,
      "webgpu: the reply arrived token by token", `${reply.pieces.length} pieces for ${reply.result?.generated_tokens} tokens`);
    const shot = join(outDir, "page.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`chat page test: screenshot ${shot}`);
    console.log(`chat page test: webgpu step took ${((Date.now() - t) / 1000).toFixed(1)} s (load ${m1.load_s.toFixed(1)} s, ` +
      `fetch ${m1.fetch_s?.toFixed(1)} s, decode ${reply.result?.decode_tok_s?.toFixed(1)} tok/s)`);
    check(downloads(server, "/models/default.gguf").complete === 1, "one full download so far");

    // 2. Reload on the CPU: from the cache, no second download.
    t = Date.now();
    await open(page, server.url, { ...query, backend: "cpu" });
    load = await loadModel(page);
    const m2 = load.metrics;
    check(load.state === "ready" && m2?.backend === "cpu", "cpu: loads after a reload", load.error ?? m2?.backend);
    check(m2?.source === "cache" && m2?.cache_status === "hit", "cpu: the model came from the cache", `${m2?.source}/${m2?.cache_status}`);
    check(load.phases.includes("cache") && !load.phases.includes("download"), "cpu: progress says cache", load.phases.join(","));
    const seen = downloads(server, "/models/default.gguf");
    check(seen.all === 1, "the server saw no second request for the model", JSON.stringify(seen));
    reply = await chat(page);
    check(reply.result?.text === expected, "cpu: the reply equals the native greedy reply", `${JSON.stringify(reply.result?.text)} ${reply.error ?? ""}`);
    // Stop: clicked as the second piece appears (a DOM observer runs before the next token),
    // the generation ends within a token of it, long before the reply's natural end.
    await page.fill("#max-tokens", "200");
    await page.fill("#prompt", PROMPT);
    await page.evaluate(() => {
      const observer = new MutationObserver(() => {
        if (window.sluicePage.pieces.length >= 2) {
          observer.disconnect();
          document.getElementById("stop").click();
        }
      });
      observer.observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
    });
    await page.click("#send");
    await waitForState(page, ["ready"], GENERATE_TIMEOUT);
    const stopped = await page.evaluate(() => window.sluicePage.lastResult);
    check(stopped?.stop_reason === "stopped" && stopped.generated_tokens <= 3, "cpu: Stop ends the generation",
      `${stopped?.stop_reason} after ${stopped?.generated_tokens} tokens`);
    // That was the conversation's second turn: the first turn's tokens came from the KV cache.
    const firstPrompt = reply.result?.prompt_tokens ?? Infinity;
    check(stopped?.tokens_reused >= firstPrompt && stopped.tokens_reused + stopped.tokens_prefilled === stopped.prompt_tokens,
      "cpu: the second turn reuses the first turn's KV cache",
      `${stopped?.tokens_reused} reused + ${stopped?.tokens_prefilled} prefilled of ${stopped?.prompt_tokens} (turn 1: ${firstPrompt})`);
    const reusedCell = await page.textContent('#metrics dd[data-metric="reused"]');
    check(reusedCell?.startsWith(`${stopped?.tokens_reused} tokens`), "cpu: the metrics panel shows the tokens reused", reusedCell);
    await page.click("#new-chat");
    const after = await page.evaluate(() => ({
      shown: document.querySelectorAll("#messages li").length,
      kept: window.sluicePage.engine.messages().length,
    }));
    check(after.shown === 0 && after.kept === 0, "cpu: New chat forgets the conversation", JSON.stringify(after));
    console.log(`chat page test: cpu step took ${((Date.now() - t) / 1000).toFixed(1)} s (cache read ${m2?.fetch_s?.toFixed(1)} s, decode ${reply.result?.decode_tok_s?.toFixed(1)} tok/s)`);

    // 2b. The wasm64 (Memory64) build of the API, on the CPU: the same reply from the cache.
    if (!existsSync(join(dist, "wasm64"))) {
      check(process.env.SLUICE_PAGE_WASM64 === "0", "the page has its wasm64 build (scripts/build-page.sh)");
      console.log("chat page test: wasm64 step skipped: the page was built without it (SLUICE_PAGE_WASM64=0)");
    } else {
      t = Date.now();
      await open(page, server.url, { ...query, backend: "cpu", wasm: "64" });
      load = await loadModel(page);
      const m64 = load.metrics;
      check(load.state === "ready" && m64?.wasm === "wasm64", "wasm64: the page loads the model into the wasm64 build",
        load.error ?? m64?.wasm);
      const arch64 = await page.textContent("#arch");
      check(arch64 === "wasm64", "wasm64: the badge says so", arch64);
      check(m64?.source === "cache", "wasm64: the model came from the cache", m64?.source);
      reply = await chat(page);
      check(reply.result?.text === expected, "wasm64: the reply equals the native greedy reply",
        `${JSON.stringify(reply.result?.text)} ${reply.error ?? ""}`);
      console.log(`chat page test: wasm64 cpu step took ${((Date.now() - t) / 1000).toFixed(1)} s (decode ${reply.result?.decode_tok_s?.toFixed(1)} tok/s)`);
    }

    // 3. An interrupted download never reaches the cache.
    t = Date.now();
    await open(page, server.url, { ...query, backend: "cpu" });
    await page.evaluate(() => window.wasmBindings.Engine.clearCache());
    load = await loadModel(page, "flaky/models/default.gguf");
    check(load.state === "error", "a cut-off download fails", load.status);
    check(/interrupted after \d+ of \d+ bytes/.test(load.error ?? "") || /truncated: got \d+ of \d+ bytes/.test(load.error ?? ""),
      "the error says how much arrived", load.error);
    const cached = await page.evaluate(() => window.wasmBindings.Engine.cachedModels());
    check(!cached.some((c) => c.url.includes("/flaky/")), "no cache entry for the cut-off download", JSON.stringify(cached));
    load = await loadModel(page, "flaky/models/default.gguf");
    const flaky = downloads(server, "/flaky/models/default.gguf");
    check(load.state === "ready" && load.metrics?.source === "network", "the next load downloads it again",
      `${load.state} ${load.metrics?.source} ${load.error ?? ""}`);
    check(flaky.cut === 1 && flaky.complete === 1, "the server saw one cut-off and one full download", JSON.stringify(flaky));
    // A damaged entry (shorter than the length it records) is deleted and downloaded again.
    const damagedUrl = new URL("flaky/models/default.gguf", server.url).href;
    await page.evaluate(async ({ url, bytes }) => {
      const cache = await caches.open("sluice-models-v1");
      const body = new Uint8Array(1000);
      body.set([71, 71, 85, 70]); // "GGUF"
      await cache.put(url, new Response(body, { headers: { "x-sluice-bytes": String(bytes) } }));
    }, { url: damagedUrl, bytes: modelBytes });
    load = await loadModel(page, "flaky/models/default.gguf");
    check(load.state === "ready" && load.metrics?.source === "network" && load.metrics?.cache_status === "stored",
      "a damaged cache entry is downloaded again", `${load.metrics?.source}/${load.metrics?.cache_status} ${load.error ?? ""}`);
    check(/truncated: got 1000 of \d+ bytes; deleted it/.test(load.metrics?.cache_error ?? ""),
      "the damaged entry is reported", load.metrics?.cache_error);
    check(downloads(server, "/flaky/models/default.gguf").complete === 2, "the server saw the second full download");
    // A complete download that is not a loadable GGUF is not cached either.
    load = await loadModel(page, "models/broken.gguf");
    check(load.state === "error" && /not a loadable GGUF file/.test(load.error ?? ""), "a cut GGUF served whole fails", load.error);
    const afterBroken = await page.evaluate(() => window.wasmBindings.Engine.cachedModels());
    check(!afterBroken.some((c) => c.url.includes("broken")), "no cache entry for it", JSON.stringify(afterBroken));
    console.log(`chat page test: interrupted-download step took ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // 4. A storage quota too small for the model: reported, and the model still runs.
    t = Date.now();
    const cdp = await context.newCDPSession(page);
    const origin = new URL(server.url).origin;
    await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 8 * 1024 * 1024 });
    await open(page, server.url, { backend: "cpu", max_tokens: "4", temperature: "0" });
    await page.evaluate(() => window.wasmBindings.Engine.clearCache());
    load = await loadModel(page);
    const m4 = load.metrics;
    check(load.state === "ready", "quota: the model loads anyway", load.error ?? "");
    check(m4?.cache_status === "failed" && /refused to store/.test(m4?.cache_error ?? ""),
      "quota: metrics say the cache refused the model", m4?.cache_error);
    check(load.status.includes("refused to store"), "quota: the page says so", load.status);
    reply = await chat(page);
    const text = reply.result?.text ?? "";
    check(text.length > 0 && expected.startsWith(text), "quota: the model still generates", JSON.stringify(text));
    await cdp.send("Storage.overrideQuotaForOrigin", { origin });
    console.log(`chat page test: quota step took ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // 5. A GGUF file picked in the file input.
    t = Date.now();
    await open(page, server.url, { backend: "cpu" });
    await page.setInputFiles("#file", model);
    const state = await waitForState(page, ["ready", "error"], LOAD_TIMEOUT);
    const m5 = await page.evaluate(() => window.sluicePage.engine?.metrics());
    check(state === "ready" && m5?.source === "file" && m5?.model_bytes === modelBytes && m5?.cache_status === "unused",
      "a picked file loads", `${state} ${m5?.source} ${m5?.model_bytes}`);
    console.log(`chat page test: file step took ${((Date.now() - t) / 1000).toFixed(1)} s`);
  } finally {
    if (failures > 0) console.log(`chat page test: page console:\n  ${logs.join("\n  ")}`);
    await context.close();
    await server.close();
    rmSync(userData, { recursive: true, force: true });
  }
  if (failures > 0) {
    console.log(`chat page test: ${failures} check(s) failed`);
    process.exit(1);
  }
  console.log("chat page test: all checks passed");
}

main().catch((e) => {
  console.error(`chat page test: ${e.stack ?? e}`);
  process.exit(1);
});
