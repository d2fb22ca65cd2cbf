// <realm-qa> in headless Chromium: the widget loads the real engine in a worker, answers the
// demo questions with native `realm ask`'s answers, shows bad files and empty questions as
// alerts and stays usable, reads its files from the Cache API the second time, passes axe-core,
// and answers through `realm serve` when given an endpoint (from another origin only where
// `--allow-origin` names it). A screenshot of the answered
// widget goes to target/web-demo/widget-answered.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { FIXTURE, fixturePaths, fixtureBundle, nativeAnswers, assertSameAnswer } from "./fixture.mjs";
import { initSync, buildShard } from "../pkg/realm.js";
import { serveFiles } from "./serve.mjs";

const WEB = new URL("..", import.meta.url).pathname;
const REPO = new URL("../..", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const paths = fixturePaths();

let server, origin, profile, context;
const shard = readFileSync(paths.index);
const bundle = readFileSync(fixtureBundle());
initSync({ module: readFileSync(new URL("../pkg/realm_bg.wasm", import.meta.url)) });
const EXTRA = {
  "/fixture/truncated.shard": shard.subarray(0, shard.length - 100),
  "/fixture/cut.realm.tar": bundle.subarray(0, bundle.length >> 1),
  // The CPU build where only a URL relative to the page finds it (web/www/), not one relative
  // to the worker's script (web/js/).
  "/www/copy-of-realm.wasm": readFileSync(new URL("../pkg/realm_bg.wasm", import.meta.url)),
  "/fixture/small.shard": buildShard(new Float32Array(8 * 3).fill(0.5), 8, Uint32Array.from([0, 1, 2]), "int8"),
};

before(async () => {
  ({ server, origin } = await serveFiles((path) => (path.startsWith("/fixture/") ? join(FIXTURE.pathname, path.slice(9)) : join(WEB, path)), EXTRA));
  profile = await mkdtemp(join(tmpdir(), "realm-widget-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    ignoreDefaultArgs: ["--headless"],
    args: ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await context?.close();
  await rm(profile, { recursive: true, force: true });
  server?.close();
});

async function openWidget(url = `${origin}/www/widget.html`, timeout = 180_000) {
  const page = await context.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => ["ready", "error"].includes(document.querySelector("realm-qa")?.state), null, { timeout })
    .catch((e) => { throw new Error(`${e.message}\n${logs.join("\n")}`); });
  return { page, logs };
}

/** Types `question`, presses Enter, and waits for the realm-qa-answer event's result. */
async function askByKeyboard(page, question) {
  return page.evaluate(async (q) => {
    const el = document.querySelector("realm-qa");
    const input = el.shadowRoot.querySelector("input");
    const answered = new Promise((resolve, reject) => {
      document.addEventListener("realm-qa-answer", (e) => resolve(e.detail), { once: true });
      el.addEventListener("error", (e) => reject(new Error(`the widget showed: ${e.detail.error.message}`)), { once: true });
    });
    input.value = q;
    input.form.requestSubmit();
    return answered;
  }, question);
}

test("the widget answers the demo questions as native realm ask does, marked in the passage", async () => {
  const { page, logs } = await openWidget();
  const loaded = await page.evaluate(() => ({ state: document.querySelector("realm-qa").state, device: document.querySelector("realm-qa").device }));
  assert.deepEqual(loaded, { state: "ready", device: "cpu" }, logs.join("\n"));
  for (const native of nativeAnswers()) {
    const result = await askByKeyboard(page, native.question);
    assertSameAnswer(result, native);
    const shown = await page.evaluate(() => {
      const root = document.querySelector("realm-qa").shadowRoot;
      const live = root.querySelectorAll("[aria-live]");
      return { mark: root.querySelector("mark")?.textContent, live: [...live].map((e) => [e.getAttribute("role"), e.getAttribute("aria-live"), e.textContent]), alert: root.querySelector('[role="alert"]').textContent };
    });
    // One live region, the answer and its title: a screen reader is not read the passage again on every answer.
    assert.deepEqual(shown, { mark: native.answer.text, live: [["status", "polite", `${native.answer.text}, from “${native.answer.title}”`]], alert: "" });
    if (native === nativeAnswers()[0] || native.question === nativeAnswers()[0].question) {
      await page.screenshot({ path: new URL("widget-answered.png", FIXTURE).pathname, fullPage: true });
    }
  }

  // axe-core over the answered widget: no serious or critical violations.
  await page.addScriptTag({ path: join(WEB, "node_modules/axe-core/axe.min.js") });
  const violations = await page.evaluate(async () => (await axe.run(document)).violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help })));
  assert.deepEqual(violations.filter((v) => ["serious", "critical"].includes(v.impact)), [], JSON.stringify(violations));

  // The second load reads every file from the Cache API.
  await page.reload();
  await page.waitForFunction(() => document.querySelector("realm-qa").state === "ready", null, { timeout: 180_000 });
  const cached = await page.evaluate(() => document.querySelector("realm-qa").loadInfo);
  assert.deepEqual(cached, { device: "cpu", fromCache: true, downloaded: 0, retriever: "fine-tuned" });
  assertSameAnswer(await askByKeyboard(page, nativeAnswers()[0].question), nativeAnswers()[0]);
  await page.close();
});

test("a keyboard user who presses Ask keeps the focus on it while the question runs; a second press does nothing", async () => {
  const { page, logs } = await openWidget();
  const native = nativeAnswers()[1];
  const seen = await page.evaluate(async (q) => {
    const el = document.querySelector("realm-qa");
    const root = el.shadowRoot;
    const button = root.querySelector("button");
    root.querySelector("input").value = q;
    let answers = 0;
    document.addEventListener("realm-qa-answer", () => answers++);
    button.focus();
    button.click();
    await new Promise((r) => setTimeout(r, 0));
    const during = { state: el.state, focused: root.activeElement === button, busy: button.getAttribute("aria-disabled") };
    button.click();
    while (el.state === "asking") await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    return { during, focused: root.activeElement === button, busy: button.getAttribute("aria-disabled"), answers, text: el.result?.answer?.text };
  }, native.question);
  assert.deepEqual(seen, { during: { state: "asking", focused: true, busy: "true" }, focused: true, busy: "false", answers: 1, text: native.answer.text }, logs.join("\n"));
  await page.close();
});

test("a lazy widget loads on the field's focus, and Escape in the field does not stop the load", async () => {
  EXTRA["/www/lazy.html"] = Buffer.from(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lazy</title>
<script type="module" src="/js/element.js"></script></head><body>
<realm-qa loading="lazy" model="/fixture/model/" index="/fixture/index.shard" passages="/fixture/passages.jsonl"></realm-qa></body></html>`);
  const page = await context.newPage();
  await page.goto(`${origin}/www/lazy.html`);
  await page.waitForFunction(() => customElements.get("realm-qa"));
  const before = await page.evaluate(() => document.querySelector("realm-qa").getAttribute("state"));
  await page.evaluate(() => {
    const input = document.querySelector("realm-qa").shadowRoot.querySelector("input");
    input.focus();
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  });
  await page.waitForFunction(() => ["ready", "error"].includes(document.querySelector("realm-qa").state), null, { timeout: 180_000 });
  assert.deepEqual({ before, after: await page.evaluate(() => document.querySelector("realm-qa").state) }, { before: "idle", after: "ready" });
  await page.close();
});

test("a widget moved in the page keeps its engine; one removed from it lets the engine go", async () => {
  const { page, logs } = await openWidget();
  const states = await page.evaluate(async () => {
    const el = document.querySelector("realm-qa");
    const tick = () => new Promise((r) => setTimeout(r, 0));
    const box = document.createElement("div");
    document.body.append(box);
    box.append(el); // a move: removed and added back in one task
    await tick();
    const moved = { state: el.state, device: el.device };
    el.remove();
    await tick();
    return { moved, removed: { state: el.state, device: el.device } };
  });
  assert.deepEqual(states, { moved: { state: "ready", device: "cpu" }, removed: { state: "idle", device: null } }, logs.join("\n"));
  await page.close();
});

test("widgets loading the same files share one worker, which ends with the last of them", async () => {
  EXTRA["/www/two.html"] = Buffer.from(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>two widgets</title>
<script type="module" src="/js/element.js"></script></head><body></body></html>`);
  const page = await context.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  await page.goto(`${origin}/www/two.html`);
  await page.waitForFunction(() => customElements.get("realm-qa"));
  const [first, second] = nativeAnswers();
  // The first widget is removed while the load it started is under way: the second, which
  // joined that load, still gets the engine; a third joins once it is built.
  const shared = await page.evaluate(async ([q1, q2]) => {
    const make = () => {
      const el = document.createElement("realm-qa");
      el.setAttribute("bundle", "/fixture/demo.realm.tar");
      el.setAttribute("device", "cpu");
      document.body.append(el);
      return el;
    };
    const tick = () => new Promise((r) => setTimeout(r, 0));
    const a = make();
    const b = make();
    await tick();
    const during = [a.state, b.state];
    a.remove();
    await b.ready;
    const c = make();
    await c.ready;
    const [answerB, answerC] = await Promise.all([b.ask(q1), c.ask(q2)]);
    return { during, removed: a.state, answerB, answerC };
  }, [first.question, second.question]);
  // Two widgets alive, one worker (unshared, b's and c's would be two).
  assert.equal(page.workers().length, 1, "one worker for the widgets alive");
  shared.afterOne = await page.evaluate(async (q1) => {
    const [b, c] = document.querySelectorAll("realm-qa");
    b.remove();
    await new Promise((r) => setTimeout(r, 0));
    return c.ask(q1);
  }, first.question);
  assert.deepEqual(shared.during, ["loading", "loading"], logs.join("\n"));
  assert.equal(shared.removed, "idle");
  assertSameAnswer(shared.answerB, first);
  assertSameAnswer(shared.answerC, second);
  assertSameAnswer(shared.afterOne, first);
  assert.equal(page.workers().length, 1, "one worker for the three widgets");
  const closed = new Promise((resolve) => page.workers()[0].once("close", resolve));
  await page.evaluate(() => document.querySelector("realm-qa").remove());
  await closed;
  assert.equal(page.workers().length, 0);
  await page.close();
});

test("a model directory without query.* (404s) embeds questions with the base model, and caches", async () => {
  EXTRA["/www/reader-only.html"] = Buffer.from(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>reader only</title>
<script type="module" src="/js/element.js"></script></head><body>
<realm-qa model="/fixture/reader-only/" index="/fixture/index.shard" passages="/fixture/passages.jsonl"></realm-qa></body></html>`);
  const { page, logs } = await openWidget(`${origin}/www/reader-only.html`);
  const info = await page.evaluate(() => document.querySelector("realm-qa").loadInfo);
  assert.equal(info.retriever, "zero-shot", logs.join("\n"));
  assert.equal(info.fromCache, false);
  const native = nativeAnswers("native-answers-zero-shot.jsonl")[0];
  assertSameAnswer(await askByKeyboard(page, native.question), native);
  // The files it has come from the cache the second time; those it lacks are asked for again.
  await page.reload();
  await page.waitForFunction(() => document.querySelector("realm-qa").state === "ready", null, { timeout: 180_000 });
  assert.deepEqual(await page.evaluate(() => document.querySelector("realm-qa").loadInfo),
    { device: "cpu", fromCache: true, downloaded: 0, retriever: "zero-shot" });
  await page.close();
});

test("a bad URL, a truncated shard, a wrong-dimension index and an empty question are alerts; the widget recovers", async () => {
  const { page } = await openWidget();
  const alertAfter = (attrs) => page.evaluate(async (attrs) => {
    const el = document.querySelector("realm-qa");
    el.dispose();
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    await el.load().catch(() => {});
    return { state: el.state, alert: el.shadowRoot.querySelector('[role="alert"]').textContent };
  }, attrs);
  const missing = await alertAfter({ index: "/fixture/missing.shard" });
  assert.equal(missing.state, "error");
  assert.match(missing.alert, /index: .*HTTP 404/);
  const truncated = await alertAfter({ index: "/fixture/truncated.shard" });
  assert.match(truncated.alert, /^index: .*(damaged|shard)/);
  const small = await alertAfter({ index: "/fixture/small.shard" });
  assert.match(small.alert, /^index: its vectors have 8 dimensions, the model embeds in 384/);
  const fixed = await alertAfter({ index: "/fixture/index.shard" });
  assert.deepEqual(fixed, { state: "ready", alert: "" });
  // A refused file is not kept in the cache: served cut off, then whole at the same URL, the
  // next load fetches it again rather than read the cut-off copy back.
  EXTRA["/www/changing.shard"] = shard.subarray(0, shard.length - 100);
  assert.match((await alertAfter({ index: "/www/changing.shard" })).alert, /^index: /);
  EXTRA["/www/changing.shard"] = shard;
  assert.deepEqual(await alertAfter({ index: "/www/changing.shard" }), { state: "ready", alert: "" });
  const empty = await page.evaluate(async () => {
    const el = document.querySelector("realm-qa");
    await el.ask("   ").catch(() => {});
    return { state: el.state, alert: el.shadowRoot.querySelector('[role="alert"]').textContent };
  });
  assert.deepEqual(empty, { state: "ready", alert: "Type a question first." });
  assertSameAnswer(await askByKeyboard(page, nativeAnswers()[2].question), nativeAnswers()[2]);

  // One `bundle` attribute instead of the three files: a cut-off one is an alert naming it,
  // the whole one answers as the files do.
  const bundleAlert = (url) => page.evaluate(async (url) => {
    const el = document.querySelector("realm-qa");
    el.dispose();
    for (const name of ["model", "index", "passages"]) el.removeAttribute(name);
    el.setAttribute("bundle", url);
    await el.load().catch(() => {});
    return { state: el.state, alert: el.shadowRoot.querySelector('[role="alert"]').textContent };
  }, url);
  assert.match((await bundleAlert("/fixture/cut.realm.tar")).alert, /^bundle: .*cut off/);
  assert.deepEqual(await bundleAlert("/fixture/demo.realm.tar"), { state: "ready", alert: "" });
  assertSameAnswer(await askByKeyboard(page, nativeAnswers()[0].question), nativeAnswers()[0]);

  // Back to the three files by attributes alone, changed in one task with no dispose(): one
  // load, of what the attributes say once the task is done (not of the first change alone,
  // which names no model).
  const switched = await page.evaluate(async () => {
    const el = document.querySelector("realm-qa");
    el.removeAttribute("bundle");
    el.setAttribute("model", "/fixture/model/");
    el.setAttribute("index", "/fixture/index.shard");
    el.setAttribute("passages", "/fixture/passages.jsonl");
    const seen = [];
    el.addEventListener("loadstart", () => seen.push("loadstart"));
    for (const end = Date.now() + 120_000; Date.now() < end && !(seen.length && ["ready", "error"].includes(el.state));) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return { state: el.state, alert: el.shadowRoot.querySelector('[role="alert"]').textContent, loads: seen.length };
  });
  assert.deepEqual(switched, { state: "ready", alert: "", loads: 1 });
  assertSameAnswer(await askByKeyboard(page, nativeAnswers()[1].question), nativeAnswers()[1]);

  // The package's load() itself: an already aborted signal rejects at once; a relative `wasm`
  // resolves against the page, as the files do (the worker would resolve it against js/).
  const direct = await page.evaluate(async (question) => {
    const { load } = await import("../js/index.js");
    const bundle = "/fixture/demo.realm.tar";
    const aborted = await load({ bundle, signal: AbortSignal.abort() }).then(() => "loaded", (e) => e.code);
    const realm = await load({ bundle, wasm: "copy-of-realm.wasm", cache: false });
    const answer = await realm.ask(question);
    realm.dispose();
    return { aborted, answer };
  }, nativeAnswers()[1].question);
  assert.equal(direct.aborted, "aborted");
  assertSameAnswer(direct.answer, nativeAnswers()[1]);
  await page.close();
});

test("realm serve answers through the widget, on its own page and on an allowed site's", async () => {
  const realm = join(REPO, "target/debug/realm");
  const child = spawn(realm, ["serve", "--listen", "127.0.0.1:0", "--model", join(FIXTURE.pathname, "model"), "--reader", join(FIXTURE.pathname, "model"),
    "--corpus", paths.passages, "--index", paths.index, "--allow-origin", origin], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const line = await new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`realm serve exited with ${code}`)));
    });
    const url = line.replace(/^serving /, "");
    const { page } = await openWidget(url, 30_000);
    for (const native of nativeAnswers().slice(0, 2)) {
      const result = await askByKeyboard(page, native.question);
      assertSameAnswer(result, native);
    }
    assert.equal(await page.evaluate(() => document.querySelector("realm-qa").device), "server");
    // A widget given an endpoint fires the events of a load, as one loading the engine does.
    const events = await page.evaluate(async (url) => {
      const el = document.createElement("realm-qa");
      const seen = [];
      for (const type of ["loadstart", "load", "loadend"]) el.addEventListener(type, (e) => seen.push([type, e.detail?.device ?? null]));
      el.setAttribute("endpoint", url);
      document.body.append(el);
      await el.ready;
      await el.load();
      el.remove();
      return seen;
    }, url);
    assert.deepEqual(events, [["loadstart", null], ["load", "server"], ["loadend", null]]);
    await page.close();

    // A page of the test's own server (another origin, allowed by --allow-origin) asks it too;
    // the same page by another name (http://localhost:PORT, not allowed) is refused, and the
    // widget's alert says which flag lets it in.
    EXTRA["/www/remote.html"] = Buffer.from(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>remote</title>
<script type="module" src="/js/element.js"></script></head><body><realm-qa endpoint="${url}"></realm-qa></body></html>`);
    const remote = (await openWidget(`${origin}/www/remote.html`, 30_000)).page;
    assertSameAnswer(await askByKeyboard(remote, nativeAnswers()[0].question), nativeAnswers()[0]);
    await remote.close();
    const other = origin.replace("127.0.0.1", "localhost");
    const refused = (await openWidget(`${other}/www/remote.html`, 30_000)).page;
    await assert.rejects(askByKeyboard(refused, nativeAnswers()[0].question), (e) => e.message.includes(`--allow-origin ${other}`));
    await refused.close();
  } finally {
    child.kill("SIGINT");
  }
});
