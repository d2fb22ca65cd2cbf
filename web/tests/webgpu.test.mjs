// <realm-qa device="webgpu"> in headless Chromium on SwiftShader's WebGPU adapter: the
// encoders run on burn's wgpu backend from the package's WebGPU build and the answer is native
// `realm ask`'s (same span, passage and offsets; reader score within 1e-2, GPU arithmetic);
// without an adapter the same page shows a clear error.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { FIXTURE, nativeAnswers, jsIndex } from "./fixture.mjs";
import { serveFiles } from "./serve.mjs";

const WEB = new URL("..", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
let server, origin;

before(async () => {
  ({ server, origin } = await serveFiles((path) => (path.startsWith("/fixture/") ? join(FIXTURE.pathname, path.slice(9)) : join(WEB, path))));
});
after(() => server?.close());

async function withPage(args, f, query = "device=webgpu") {
  const profile = await mkdtemp(join(tmpdir(), "realm-webgpu-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, ignoreDefaultArgs: ["--headless"],
    args: ["--headless=new", "--no-sandbox", "--disable-background-networking", "--no-first-run", ...args],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const logs = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`${origin}/www/widget.html?${query}`);
    await page.waitForFunction(() => ["ready", "error"].includes(document.querySelector("realm-qa")?.state), null, { timeout: 600_000 });
    return await f(page, logs);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

// From the top passage alone (top-k 1): SwiftShader takes about 20 seconds a passage; the CPU
// tests read five.
test("on SwiftShader's WebGPU the widget answers with native realm ask's answer", async (t) => {
  await withPage(["--enable-unsafe-webgpu"], async (page, logs) => {
    const state = await page.evaluate(() => ({ state: document.querySelector("realm-qa").state, device: document.querySelector("realm-qa").device, alert: document.querySelector("realm-qa").shadowRoot.querySelector('[role="alert"]').textContent }));
    assert.deepEqual(state, { state: "ready", device: "webgpu", alert: "" }, logs.join("\n"));
    const native = nativeAnswers("native-answers-k1.jsonl")[0];
    const result = await page.evaluate((q) => document.querySelector("realm-qa").ask(q), native.question);
    assert.equal(result.device, "webgpu");
    assert.equal(result.answer.text, native.answer.text);
    assert.equal(result.answer.passageId, native.answer.passage_id);
    assert.equal(result.answer.start, jsIndex(result.answer.context, native.answer.start));
    assert.deepEqual(result.passages.map((p) => p.id), native.passages.map((p) => p.id));
    const gap = Math.abs(result.answer.readerScore - native.answer.reader_score);
    assert.ok(gap < 1e-2, `${result.answer.readerScore} vs ${native.answer.reader_score}`);
    t.diagnostic(`reader score ${result.answer.readerScore} (native ${native.answer.reader_score}, gap ${gap.toExponential(2)}); seconds ${JSON.stringify(result.seconds)} on SwiftShader`);
  }, "device=webgpu&k=1");
});

test("without a WebGPU adapter, device=webgpu is a clear error in the widget", async () => {
  await withPage([], async (page) => {
    const state = await page.evaluate(() => ({ state: document.querySelector("realm-qa").state, alert: document.querySelector("realm-qa").shadowRoot.querySelector('[role="alert"]').textContent }));
    assert.equal(state.state, "error");
    assert.match(state.alert, /device "webgpu": .*(no adapter|no navigator\.gpu)/);
  });
});

// device "auto" (the default) where the browser offers a hardware adapter that then gives no
// device: the engine loads on the CPU instead of failing. The adapter is a stand-in, put in
// place of navigator.gpu.requestAdapter in a page that loads without a worker.
test("device auto loads on the CPU where a WebGPU adapter gives no device", async () => {
  const profile = await mkdtemp(join(tmpdir(), "realm-webgpu-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, ignoreDefaultArgs: ["--headless"],
    args: ["--headless=new", "--no-sandbox", "--disable-background-networking", "--no-first-run", "--enable-unsafe-webgpu"],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const logs = [];
    page.on("console", (m) => logs.push(m.text()));
    await page.goto(`${origin}/js/index.js`);
    const native = nativeAnswers()[2];
    const got = await page.evaluate(async (question) => {
      const adapter = {
        info: { isFallbackAdapter: false, vendor: "stand-in", architecture: "", device: "", description: "" },
        features: new Set(), limits: {}, isFallbackAdapter: false,
        requestDevice: async () => { throw new Error("this adapter gives no device"); },
        requestAdapterInfo: async () => adapter.info,
      };
      Object.defineProperty(navigator.gpu, "requestAdapter", { value: async () => adapter });
      const { load } = await import("/js/index.js");
      const realm = await load({ model: "/fixture/model/", index: "/fixture/index.shard", passages: "/fixture/passages.jsonl", worker: false, cache: false });
      const result = await realm.ask(question, { topK: 5 });
      return { device: realm.device, answer: result.answer.text };
    }, native.question).catch((e) => ({ error: `${e.message}\n${logs.join("\n")}` }));
    assert.deepEqual(got, { device: "cpu", answer: native.answer.text });
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
});
