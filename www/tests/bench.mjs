// The chat page's CPU speed in headless Chromium, for side-by-side runs with wllama
// (scripts/compare-wllama.sh): the Trunk build (www/dist) served by www/serve.mjs, the model
// loaded by URL twice (the second load reads the page's model cache: the warm figure), then one
// greedy chat reply. Prints one JSON line per wasm build (wasm32, and wasm64 when built):
// `{ engine, wasm, threads, load_s, fetch_s, ttft_s, prefill_tok_s, decode_tok_s, generated_tokens }`.
//
//   node www/tests/bench.mjs MODEL.gguf [max_tokens]

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve } from "../serve.mjs";
import { CHROMIUM_ARGS, chat, chromiumPath, loadModel, open } from "./page.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const model = process.argv[2];
const maxTokens = process.argv[3] ?? "64";
const dist = resolve(repo, process.env.SLUICE_PAGE_DIST ?? "www/dist");
// The peer harness's prompt.
const PROMPT = "The capital of France is";

if (!model) {
  console.error("usage: node www/tests/bench.mjs MODEL.gguf [max_tokens]");
  process.exit(2);
}
if (!existsSync(join(dist, "index.html"))) {
  console.error(`bench: no page at ${dist} (run scripts/build-page.sh)`);
  process.exit(1);
}
const server = await serve({ root: dist, models: { "default.gguf": model }, quiet: true });
const userData = mkdtempSync(join(tmpdir(), "sluice-page-bench-"));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: chromiumPath(),
  headless: true,
  args: CHROMIUM_ARGS,
});
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const builds = existsSync(join(dist, "wasm64")) ? ["32", "64"] : ["32"];
  for (const wasm of builds) {
    const query = { backend: "cpu", wasm, max_tokens: maxTokens, temperature: "0" };
    let load;
    for (let round = 0; round < 2; round++) {
      await open(page, server.url, query);
      load = await loadModel(page);
      if (load.state !== "ready") throw new Error(`wasm${wasm}: load failed: ${load.error ?? load.status}`);
    }
    const reply = await chat(page, PROMPT);
    if (!reply.result) throw new Error(`wasm${wasm}: no reply: ${reply.error}`);
    const m = load.metrics;
    const r = reply.result;
    console.log(JSON.stringify({
      engine: "sluice", wasm: m.wasm, backend: m.backend, threads: 1, source: m.source,
      load_s: m.load_s, fetch_s: m.fetch_s, ttft_s: r.ttft_s, prefill_tok_s: r.prefill_tok_s,
      decode_tok_s: r.decode_tok_s, prompt_tokens: r.prompt_tokens, generated_tokens: r.generated_tokens,
    }));
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  failed = true;
} finally {
  await context.close();
  server.close();
  rmSync(userData, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
