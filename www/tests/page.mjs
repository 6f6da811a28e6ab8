// Drives the chat page (www/) in Chromium through playwright-core: the state machine the page
// exposes on `document.body.dataset.state`, its controls and `window.sluicePage`. Shared by the
// page test (chat.test.mjs) and the page benchmark (bench.mjs).

import { execFileSync } from "node:child_process";

// Chromium's software WebGPU (SwiftShader) in headless mode; see TOOLCHAIN.md.
export const CHROMIUM_ARGS = [
  "--enable-unsafe-webgpu",
  "--enable-unsafe-swiftshader",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];
const LOAD_TIMEOUT = 240_000;
const GENERATE_TIMEOUT = 240_000;

/** Debian's chromium, or SLUICE_CHROMIUM. */
export function chromiumPath() {
  return process.env.SLUICE_CHROMIUM ?? execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
}

export async function waitForState(page, states, timeout) {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout });
  return page.evaluate(() => document.body.dataset.state);
}

/** Opens the page with its controls preset by query parameters. */
export async function open(page, base, query) {
  await page.goto(`${base}?${new URLSearchParams(query)}`);
  await waitForState(page, ["idle"], 60_000);
}

/** Loads `url` through the URL field (or the default button); resolves to the state and metrics. */
export async function loadModel(page, url) {
  if (url) {
    await page.fill("#url", url);
    await page.click("#load-url");
  } else {
    await page.click("#load-default");
  }
  const state = await waitForState(page, ["ready", "error"], LOAD_TIMEOUT);
  return page.evaluate((state) => ({
    state,
    error: window.sluicePage.lastError,
    metrics: window.sluicePage.engine?.metrics() ?? null,
    phases: [...new Set(window.sluicePage.progress)],
    status: document.getElementById("status").textContent,
  }), state);
}

/** Sends the prompt and waits for the reply; resolves to the shown text and the API's result. */
export async function chat(page, prompt) {
  await page.fill("#prompt", prompt);
  await page.click("#send");
  await waitForState(page, ["generating"], 10_000).catch(() => {});
  await waitForState(page, ["ready"], GENERATE_TIMEOUT);
  return page.evaluate(() => {
    const replies = document.querySelectorAll("#messages li.assistant");
    const { lastResult: result, lastError: error, pieces } = window.sluicePage;
    return { shown: replies[replies.length - 1]?.textContent, result, error, pieces };
  });
}
