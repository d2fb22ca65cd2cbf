// The wasm package in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// the demo page returns the native run's passages on the CPU, and on WebGPU exactly when the
// browser offers an adapter (SwiftShader with --enable-unsafe-webgpu).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, extname, normalize } from "node:path";
import { chromium } from "playwright-core";
import { nativeReport, assertSameAnswers } from "./expected.mjs";

const ROOT = new URL("..", import.meta.url).pathname;
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css" };
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server;
let origin;

before(async () => {
  server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.includes("..")) return res.writeHead(400).end();
    try {
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
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
