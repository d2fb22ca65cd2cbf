// The package as users get it: `npm pack`, installed from the tarball into a fresh app, then a
// plain HTML page that loads <realm-qa> from node_modules and a Vite build of the same app
// each answer a demo question in headless Chromium with native realm ask's answer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile, mkdtemp, rm } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { FIXTURE, nativeAnswers, assertSameAnswer } from "./fixture.mjs";
import { serveFiles } from "./serve.mjs";

const WEB = new URL("..", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WIDGET = `<realm-qa model="/fixture/model/" index="/fixture/index.shard" passages="/fixture/passages.jsonl"></realm-qa>`;

let app, server, origin, browser;

before(async () => {
  app = await mkdtemp(join(tmpdir(), "realm-app-"));
  const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", app], { cwd: WEB, encoding: "utf8" }).trim().split("\n").pop();
  await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--silent", `./${tarball}`], { cwd: app });
  // A plain page, straight from node_modules.
  await writeFile(join(app, "plain.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>plain</title>
<script type="module" src="/node_modules/realm-qa/js/element.js"></script></head><body><main>${WIDGET}</main></body></html>`);
  // A Vite app importing the element by its package subpath.
  await writeFile(join(app, "index.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vite</title>
<script type="module" src="./main.js"></script></head><body><main>${WIDGET}</main></body></html>`);
  await writeFile(join(app, "main.js"), `import "realm-qa/element";\n`);
  execFileSync(join(WEB, "node_modules/.bin/vite"), ["build", "--base", "/vite/", "--logLevel", "error"], { cwd: app });

  ({ server, origin } = await serveFiles((path) => (path.startsWith("/fixture/") ? join(FIXTURE.pathname, path.slice(9))
    : path.startsWith("/vite/") ? join(app, "dist", path.slice(6)) : join(app, path))));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless=new", "--no-sandbox", "--disable-background-networking"] });
});

after(async () => {
  await browser?.close();
  server?.close();
  if (app) await rm(app, { recursive: true, force: true });
});

async function answerOn(url) {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push(String(e)));
  await page.goto(url);
  const native = nativeAnswers()[0];
  const result = await page.evaluate((q) => customElements.whenDefined("realm-qa").then(() => document.querySelector("realm-qa").ask(q)), native.question)
    .catch((e) => { throw new Error(`${e.message}\n${logs.join("\n")}`); });
  assertSameAnswer(result, native);
  await page.close();
}

test("a plain HTML page loads the packed widget from node_modules and answers", () => answerOn(`${origin}/plain.html`));

test("a Vite build of the packed widget answers", async () => {
  const built = await readFile(join(app, "dist/index.html"), "utf8");
  assert.match(built, /\/vite\/assets\/index-/);
  await answerOn(`${origin}/vite/index.html`);
});
