// The browser benchmarks, one run, printed as BENCHMARKS.md rows: search over N x 128 vectors
// in Chromium (our int8 ShardIndex, a plain JS int8 loop, voy), and question answering with the
// engine in its worker (time to first answer cold and cached, per question, bytes, memory)
// beside native `realm ask` on the same files, and its two forwards against onnxruntime-web
// (web/bench/ort.html). Needs scripts/build-wasm.sh and
// scripts/web-fixture.sh first. Usage: node bench/run.mjs   (scripts/bench-web.sh)
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { serveFiles } from "../tests/serve.mjs";

const WEB = new URL("..", import.meta.url).pathname;
const REPO = new URL("../..", import.meta.url).pathname;
const FIXTURE = join(REPO, "target/web-demo");
// onnxruntime-web, installed by scripts/bench-web.sh outside the package's dependencies.
const ORT = join(REPO, "target/bench-peers/node_modules/onnxruntime-web/dist");

const { server, origin } = await serveFiles((path) => (path.startsWith("/fixture/") ? join(FIXTURE, path.slice(9))
  : path.startsWith("/ort/") ? join(ORT, path.slice(5)) : join(WEB, path)));
const profile = await mkdtemp(join(tmpdir(), "realm-bench-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  ignoreDefaultArgs: ["--headless"],
  args: ["--headless=new", "--no-sandbox", "--disable-background-networking", "--no-first-run"],
});

async function page(url) {
  const p = await context.newPage();
  await p.goto(url);
  await p.waitForFunction(() => window.bench, null, { timeout: 1_800_000 });
  const bench = await p.evaluate(() => window.bench);
  await p.close();
  if (bench.error) throw new Error(bench.error);
  return bench;
}

const cpu = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO, encoding: "utf8" }).trim();
try {
  const search = await page(`${origin}/bench/search.html?n=${process.env.N ?? 100000}&queries=20`);
  const qa = await page(`${origin}/bench/qa.html`);
  const ort = await page(`${origin}/bench/ort.html`);
  // Native realm ask on the same files (the reader and its question embedder, as the browser reads),
  // same questions (the debug build the tests use).
  const questions = ["Who painted the Mona Lisa?", "What is the capital of Australia?", "Who wrote Hamlet?",
    "What is the largest planet in the solar system?", "When did the Second World War end?"];
  const out = execFileSync(join(REPO, process.env.REALM ?? "target/debug/realm"), ["ask", "--json", "-k", "5", "--model", join(FIXTURE, "model"),
    "--reader", join(FIXTURE, "model"), "--corpus", join(FIXTURE, "passages.jsonl"), "--index", join(FIXTURE, "index.shard")],
  { input: questions.join("\n") + "\n", encoding: "utf8", env: { ...process.env, RAYON_NUM_THREADS: "1" } });
  const native = out.trim().split("\n").map((l) => JSON.parse(l).seconds);
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const nativeAsk = med(native.map((s) => s.total * 1e3));
  const nativeRead = med(native.map((s) => s.read * 1e3));
  const nativeEmbed = med(native.map((s) => s.embed * 1e3));
  const wasmGz = gzipSync(readFileSync(join(WEB, "pkg/realm_bg.wasm")), { level: 9 }).length;
  const f = (x, d = 1) => x.toFixed(d);
  console.log(`${cpu}; ${search.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? search.userAgent}; commit ${commit}; one thread each (wasm has one; native RAYON_NUM_THREADS=1)\n`);
  console.log(`| search, ${search.n.toLocaleString("en")} x ${search.dim}, top-${search.k}, median of ${search.queries} queries | ms/query | ours is |`);
  console.log(`|---|---|---|`);
  console.log(`| ours: int8 ShardIndex (wasm) | ${f(search.oursMs, 2)} | |`);
  console.log(`| plain JS int8 loop | ${f(search.jsMs, 2)} | ${f(search.jsMs / search.oursMs)}x faster |`);
  console.log(`| voy 0.6.3 (k-d tree; index built in ${f(search.voyBuildMs / 1e3)} s) | ${f(search.voyMs, 2)} | ${f(search.voyMs / search.oursMs)}x faster |`);
  console.log(`\n(top-1 agreement ours vs JS loop: ${search.agree}/${search.queries})\n`);
  console.log(`| question answering (1,003 passages, top-5, demo reader) | wasm in Chromium's worker | native realm ask | wasm / native |`);
  console.log(`|---|---|---|---|`);
  console.log(`| per question (median of 5): total | ${f(qa.askMs, 0)} ms | ${f(nativeAsk, 0)} ms | ${f(qa.askMs / nativeAsk)} |`);
  console.log(`| - question embedding | ${f(qa.embedMs, 0)} ms | ${f(nativeEmbed, 0)} ms | ${f(qa.embedMs / nativeEmbed)} |`);
  console.log(`| - reader over 5 passages | ${f(qa.readMs, 0)} ms | ${f(nativeRead, 0)} ms | ${f(qa.readMs / nativeRead)} |`);
  console.log(`| time to first answer, cold (files over loopback HTTP) | ${f(qa.coldFirstAnswerMs / 1e3)} s (load ${f(qa.coldLoadMs / 1e3)} s) | | |`);
  console.log(`| time to first answer, cached (Cache API: ${qa.fromCache}) | ${f(qa.cachedFirstAnswerMs / 1e3)} s (load ${f(qa.cachedLoadMs / 1e3)} s) | | |`);
  console.log(`| bytes downloaded (cold): model, reader, index, passages + wasm gzipped | ${(qa.downloaded / 1e6).toFixed(1)} MB + ${(wasmGz / 1e6).toFixed(2)} MB | | |`);
  console.log(`| wasm memory, peak | ${(qa.wasmMemory / 2 ** 20).toFixed(0)} MiB | | |`);
  // The engine's forwards against onnxruntime-web's on the same inputs. The reader row counts
  // only the questions whose 5 passages each fit one 256-wordpiece window (else realm reads
  // more windows than ORT's 5 rows).
  const whole = ort.perQuestion.map((q, i) => (q.whole ? i : -1)).filter((i) => i >= 0);
  const oursEmbed = med(qa.perQuestion.map((s) => s.embed * 1e3));
  const ortEmbed = med(ort.perQuestion.map((q) => q.embedMs));
  const oursRead = med(whole.map((i) => qa.perQuestion[i].read * 1e3));
  const ortRead = med(whole.map((i) => ort.perQuestion[i].readMs));
  const nativeScores = out.trim().split("\n").map((l) => JSON.parse(l).answer?.reader_score);
  const gap = Math.max(...whole.map((i) => Math.abs(ort.perQuestion[i].bestLogit - nativeScores[i])));
  console.log(`\n| one thread, wasm, same weights and inputs | ours (worker) | onnxruntime-web ${ort.version} (page) | ours / ORT (goal <= 1.5) |`);
  console.log(`|---|---|---|---|`);
  console.log(`| question embedding, median of 5 questions (${Math.min(...ort.perQuestion.map((q) => q.embedSeq))}-${Math.max(...ort.perQuestion.map((q) => q.embedSeq))} wordpieces) | ${f(oursEmbed)} ms | ${f(ortEmbed)} ms | ${f(oursEmbed / ortEmbed, 2)} |`);
  console.log(`| reader, 5 passages in one batch, median of the ${whole.length} questions whose passages fit 256 wordpieces (sequence ${whole.map((i) => ort.perQuestion[i].seq).join(", ")}) | ${f(oursRead, 0)} ms | ${f(ortRead, 0)} ms | ${f(oursRead / ortRead, 2)} |`);
  console.log(`\n(ORT's best span logit against native realm ask's reader score, same questions: largest gap ${gap.toExponential(2)})`);
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
  server.close();
}
