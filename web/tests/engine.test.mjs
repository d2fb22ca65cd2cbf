// The real engine in Node (the package's Node entry, in this thread): MiniLM with the shipped
// fine-tuned top layer embeds the question (the base model alone where the directory has no
// query.*), the shard is searched, the shipped reader reads; every demo question gets native
// `realm ask`'s answer, passage and offsets. Bad input is a typed error naming the file, and
// the engine answers again afterwards.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { load, RealmError } from "../js/node.js";
import { fixturePaths, fixtureBundle, fixtureBundleF16, fixtureReaderOnly, nativeAnswers, assertSameAnswer, jsIndex } from "./fixture.mjs";

let realm;
const paths = fixturePaths();

before(async () => {
  const phases = new Set();
  realm = await load({ ...paths, onProgress: (p) => phases.add(p.phase) });
  assert.ok(phases.has("build"));
});
after(() => realm?.dispose());

test("the demo questions get native realm ask's answers", async () => {
  assert.equal(realm.device, "cpu");
  assert.equal(realm.passageCount, 1003);
  assert.equal(realm.retriever, "fine-tuned");
  for (const native of nativeAnswers()) {
    const result = await realm.ask(native.question, { topK: 5 });
    assertSameAnswer(result, native);
    assert.equal(result.device, "cpu");
    assert.ok(result.seconds.total > 0);
  }
});

test("an empty question and a bad topK are typed errors, and the engine still answers", async () => {
  await assert.rejects(realm.ask("   "), (e) => e instanceof RealmError && e.code === "question");
  await assert.rejects(realm.ask("Who wrote Hamlet?", { topK: 0 }), (e) => e.code === "options" && /topK/.test(e.message));
  // 2^32 would wrap to 0 on its way into the engine; text the tokenizer drops whole is no question.
  await assert.rejects(realm.ask("Who wrote Hamlet?", { topK: 2 ** 32 }), (e) => e.code === "options" && /topK/.test(e.message));
  // More passages than one answer reads (the engine's MAX_TOP_K).
  await assert.rejects(realm.ask("Who wrote Hamlet?", { topK: 101 }), (e) => e.code === "options" && /1 to 100/.test(e.message));
  await assert.rejects(realm.ask("\u200b\u0000\u0301"), (e) => e.code === "question" && /no word/.test(e.message));
  const native = nativeAnswers()[0];
  assertSameAnswer(await realm.ask(native.question), native);
});

test("abort() rejects the ask in flight, and the engine still answers", async () => {
  const native = nativeAnswers()[0];
  const pending = realm.ask(native.question);
  realm.abort();
  await assert.rejects(pending, (e) => e instanceof RealmError && e.code === "aborted");
  assertSameAnswer(await realm.ask(native.question), native);
});

test("an ask's signal rejects that ask alone; the others answer", async () => {
  const [first, second] = nativeAnswers();
  const controller = new AbortController();
  const one = realm.ask(first.question, { signal: controller.signal });
  const two = realm.ask(second.question);
  controller.abort();
  await assert.rejects(one, (e) => e instanceof RealmError && e.code === "aborted");
  assertSameAnswer(await two, second);
});

test("a download that breaks off is a fetch error naming the file, not a raw TypeError", async () => {
  const { createServer } = await import("node:http");
  const { fetchFile } = await import("../js/loader.js");
  // Declares 1,000 bytes, sends 10, and hangs up.
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-length": "1000" });
    res.write("0123456789", () => res.socket.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const url = `http://127.0.0.1:${server.address().port}/index.shard`;
    await assert.rejects(fetchFile({ name: "index", url }, { cache: false }),
      (e) => e instanceof RealmError && e.code === "fetch" && e.file === "index" && /index/.test(e.message));
  } finally {
    server.close();
  }
});

test("the load's fraction counts a file of unknown size as far as it has come, never past the files of known size", async () => {
  const { loadFraction } = await import("../js/loader.js");
  const at = (entries) => loadFraction(new Map(Object.entries(entries)));
  assert.equal(at({}), 0);
  assert.equal(at({ "model.safetensors": { loaded: 25, total: 100 }, index: { loaded: 0, total: 100 } }), 0.125);
  // A compressed passages file (no usable Content-Length) of 500 bytes so far beside a model
  // a tenth read: counting its bytes as done against the known sizes alone ran the bar to 99%.
  const mixed = at({ "model.safetensors": { loaded: 10, total: 100 }, passages: { loaded: 500, total: null } });
  assert.ok(mixed < 0.9, `fraction ${mixed}`);
  assert.equal(mixed, 510 / 600);
  // Everything read is still short of 1 until the engine is built.
  assert.equal(at({ "model.safetensors": { loaded: 100, total: 100 } }), 0.99);
  // No size known at all (one gzipped bundle): no fraction to show, not 99% at the first chunk.
  assert.equal(at({ bundle: { loaded: 1, total: null } }), null);
  // A server that sends more than it declared does not count the excess.
  assert.equal(at({ a: { loaded: 300, total: 100 }, b: { loaded: 0, total: 100 } }), 0.5);
});

test("a missing file, a truncated shard, an index of the wrong dimension or of other passages each name the file", async () => {
  await assert.rejects(load({ ...paths, index: paths.index + ".missing" }), (e) => e.code === "fetch" && e.file === "index");
  const shard = readFileSync(paths.index);
  await assert.rejects(load({ ...paths, index: undefined, files: { index: shard.subarray(0, shard.length - 100) } }),
    (e) => e.code === "file" && e.file === "index" && /damaged|shard|truncat|length/i.test(e.message));
  // A shard of 8-dimensional vectors: MiniLM embeds in 384.
  const { buildShard } = await import("../pkg/realm.js");
  const small = buildShard(new Float32Array(8 * 3).fill(0.5), 8, Uint32Array.from([0, 1, 2]), "int8");
  await assert.rejects(load({ ...paths, index: undefined, files: { index: small } }),
    (e) => e.code === "file" && e.file === "index" && /8 dimensions.*384/.test(e.message));
  await assert.rejects(load({ ...paths, model: undefined }), (e) => e.code === "options" && /model/.test(e.message));
  // The same passages in another order: as many as the index has rows, but not its corpus.
  const [first, second, ...rest] = readFileSync(paths.passages, "utf8").split("\n");
  const reordered = new TextEncoder().encode([second, first, ...rest].join("\n"));
  await assert.rejects(load({ ...paths, passages: undefined, files: { passages: reordered } }),
    (e) => e.code === "file" && e.file === "index" && /another corpus/.test(e.message));
  // A tokenizer whose ids or segments the model's tables do not hold: refused at load, naming
  // it (it once loaded, and trapped the module at the first question).
  const tokenizer = JSON.parse(readFileSync(`${paths.model}tokenizer.json`, "utf8"));
  const farId = structuredClone(tokenizer);
  farId.model.vocab.zzzz = 40000;
  const farSegment = structuredClone(tokenizer);
  farSegment.post_processor.single = farSegment.post_processor.single.map((p) =>
    p.Sequence ? { Sequence: { ...p.Sequence, type_id: 5 } } : p);
  for (const [bad, why] of [[farId, /token id 40000, but the model's vocab_size is 30522/], [farSegment, /segment id 5/]]) {
    await assert.rejects(load({ ...paths, files: { "tokenizer.json": new TextEncoder().encode(JSON.stringify(bad)) } }),
      (e) => e.code === "file" && e.file === "tokenizer.json" && why.test(e.message), String(why));
  }
});

test("without query.* the base model embeds the questions, as native realm ask does", async () => {
  const zeroShot = await load({ ...paths, model: fixtureReaderOnly() });
  assert.equal(zeroShot.retriever, "zero-shot");
  const natives = nativeAnswers("native-answers-zero-shot.jsonl");
  const fineTuned = nativeAnswers();
  for (const [i, native] of natives.entries()) {
    const result = await zeroShot.ask(native.question, { topK: 5 });
    assertSameAnswer(result, native);
    // Each passage's retriever score is native's zero-shot one, not the fine-tuned one.
    result.passages.forEach((p, j) => assert.ok(Math.abs(p.retrieverScore - native.passages[j].retriever_score) < 1e-3));
    assert.notEqual(native.passages[0].retriever_score, fineTuned[i].passages[0].retriever_score);
  }
  zeroShot.dispose();
});

test("a question embedder's card without its tensors, or damaged tensors, name the file", async () => {
  const dir = paths.model;
  const card = readFileSync(`${dir}query.json`);
  const tensors = readFileSync(`${dir}query.safetensors`);
  const only = (files) => load({ ...paths, model: fixtureReaderOnly(), files });
  await assert.rejects(only({ "query.json": card }),
    (e) => e.code === "file" && e.file === "query.safetensors" && /missing/.test(e.message));
  await assert.rejects(only({ "query.safetensors": tensors }),
    (e) => e.code === "file" && e.file === "query.json" && /missing/.test(e.message));
  const flipped = tensors.slice();
  flipped[flipped.length - 1] ^= 1;
  await assert.rejects(only({ "query.json": card, "query.safetensors": flipped }),
    (e) => e.code === "file" && e.file === "query.safetensors" && /sha256/.test(e.message));
  await assert.rejects(only({ "query.json": new TextEncoder().encode("{}"), "query.safetensors": tensors }),
    (e) => e.code === "file" && e.file === "query.json" && /not a question-embedder card/.test(e.message));
});

test("one bundle loads the same engine as the separate files, and a cut-off one names the bundle", async () => {
  const bundled = await load({ bundle: fixtureBundle() });
  assert.equal(bundled.passageCount, 1003);
  assert.equal(bundled.retriever, "fine-tuned");
  for (const native of nativeAnswers()) assertSameAnswer(await bundled.ask(native.question, { topK: 5 }), native);
  bundled.dispose();
  const bytes = readFileSync(fixtureBundle());
  await assert.rejects(load({ files: { bundle: bytes.subarray(0, bytes.length >> 1) } }),
    (e) => e instanceof RealmError && e.code === "file" && e.file === "bundle" && /cut off/.test(e.message));
});

test("a bundle with the base model in F16 gives native's answers from f32 weights", async () => {
  const half = await load({ bundle: fixtureBundleF16() });
  assert.equal(half.retriever, "fine-tuned");
  for (const native of nativeAnswers()) {
    const { answer, passages } = await half.ask(native.question, { topK: 5 });
    // Rounded weights move the scores, not (on these questions) the answer or its passage.
    assert.equal(answer.text, native.answer.text, native.question);
    assert.equal(answer.passageId, native.answer.passage_id, native.question);
    assert.equal(answer.start, jsIndex(answer.context, native.answer.start));
    assert.ok(Math.abs(answer.readerScore - native.answer.reader_score) < 0.5, `${answer.readerScore} vs ${native.answer.reader_score}`);
    assert.equal(passages[0].id, native.passages[0].id, native.question);
  }
  half.dispose();
});

test("a disposed engine rejects with code disposed", async () => {
  const other = await load(paths);
  other.dispose();
  await assert.rejects(other.ask("Who wrote Hamlet?"), (e) => e.code === "disposed");
});
