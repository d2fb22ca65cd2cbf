// The wasm package in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// the demo page returns the native run's passages on the CPU, and on WebGPU exactly when the
// browser offers an adapter (SwiftShader with --enable-unsafe-webgpu).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { nativeReport, assertSameAnswers } from "./expected.mjs";
import { serveFiles } from "./serve.mjs";

const ROOT = new URL("..", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server;
let origin;

before(async () => {
  ({ server, origin } = await serveFiles((path) => join(ROOT, path)));
});

after(() => server?.close());

/** Opens the demo page in a fresh profile and returns what it computed. */
async function runPage(extraArgs) {
  const profile = await mkdtemp(join(tmpdir(), "realm-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    ignoreDefaultArgs: ["--headless"],
    args: ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic", ...extraArgs],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const logs = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`${origin}/www/index.html`);
    await page.waitForFunction(() => window.realm?.done === true, null, { timeout: 120_000 });
    const state = await page.evaluate(() => window.realm);
    assert.equal(state.error, null, `the page failed: ${state.error}\n${logs.join("\n")}`);
    return state;
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

test("with a WebGPU adapter the page searches on WebGPU and on the CPU, and both match native", async () => {
  const state = await runPage(["--enable-unsafe-webgpu"]);
  const native = nativeReport();
  assert.equal(state.webgpuSkipped, null);
  assert.equal(state.webgpu.backend, "webgpu");
  assertSameAnswers(state.webgpu, native);
  assertSameAnswers(state.cpu, native);
});

test("without a WebGPU adapter the page falls back to the CPU and still matches native", async () => {
  const state = await runPage([]);
  assert.equal(state.webgpu, null);
  assert.match(state.webgpuSkipped, /requestAdapter|navigator\.gpu/);
  assertSameAnswers(state.cpu, nativeReport());
});
