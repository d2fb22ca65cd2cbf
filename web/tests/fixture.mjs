// The files the engine tests answer from and the native answers they must match: built by
// scripts/web-fixture.sh into target/web-demo (scripts/test.sh runs it first).
import { readFileSync, existsSync } from "node:fs";
import assert from "node:assert/strict";

export const FIXTURE = new URL("../../target/web-demo/", import.meta.url);

export function fixturePaths() {
  if (!existsSync(new URL("native-answers.jsonl", FIXTURE))) {
    throw new Error(`no fixture in ${FIXTURE.pathname}: run scripts/web-fixture.sh first`);
  }
  const p = (name) => new URL(name, FIXTURE).pathname;
  return { model: p("model/"), index: p("index.shard"), passages: p("passages.jsonl") };
}

/** The model directory without the question embedder (query.*): questions embedded with the base model. */
export function fixtureReaderOnly() {
  fixturePaths();
  return new URL("reader-only/", FIXTURE).pathname;
}

/** The same files as one bundle (`realm bundle`). */
export function fixtureBundle() {
  fixturePaths();
  return new URL("demo.realm.tar", FIXTURE).pathname;
}

/** The same with the base model's weights as F16 (`realm bundle --f16`). */
export function fixtureBundleF16() {
  fixturePaths();
  return new URL("demo-f16.realm.tar", FIXTURE).pathname;
}

/** `realm ask --json` on the demo questions, one report per question (`native-answers-k1.jsonl`:
 * the first question from its top passage alone; `native-answers-zero-shot.jsonl`: the first
 * three from the reader-only directory). */
export function nativeAnswers(file = "native-answers.jsonl") {
  return readFileSync(new URL(file, FIXTURE), "utf8").trim().split("\n").map((l) => JSON.parse(l));
}

/** JavaScript string index of UTF-8 byte offset `byte` in `text`. */
export function jsIndex(text, byte) {
  return Buffer.from(text, "utf8").subarray(0, byte).toString("utf8").length;
}

/** The wasm answer is native's: same span text, passage and offsets; scores within 1e-3. */
export function assertSameAnswer(result, native) {
  assert.equal(result.question, native.question);
  assert.ok(result.answer, `no answer to "${native.question}"`);
  const a = result.answer, n = native.answer;
  assert.equal(a.text, n.text, native.question);
  assert.equal(a.passageId, n.passage_id, native.question);
  assert.equal(a.start, jsIndex(a.context, n.start));
  assert.equal(a.end, jsIndex(a.context, n.end));
  assert.equal(a.context.slice(a.start, a.end), a.text);
  assert.ok(Math.abs(a.readerScore - n.reader_score) < 1e-3, `reader score ${a.readerScore} vs native ${n.reader_score}`);
  assert.deepEqual(result.passages.map((p) => p.id), native.passages.map((p) => p.id));
}
