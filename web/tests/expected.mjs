// The native run's answers, which every JavaScript path must reproduce.
// scripts/test.sh writes them with `realm skeleton --json --search cpu`.
import { readFileSync, existsSync } from "node:fs";
import assert from "node:assert/strict";

const path = process.env.REALM_NATIVE_JSON ?? new URL("../../target/demo-native.json", import.meta.url).pathname;

export function nativeReport() {
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`cargo run -p realm-native -- skeleton --json --search cpu > ${path}\` (scripts/test.sh does)`);
  }
  return JSON.parse(readFileSync(path, "utf8"));
}

/** Same questions, same passage ids in the same order, scores within a relative 1e-4. */
export function assertSameAnswers(result, native) {
  assert.equal(result.questions.length, native.questions.length);
  result.questions.forEach((answer, q) => {
    const want = native.questions[q];
    assert.equal(answer.question, want.question);
    assert.deepEqual(answer.hits.map((h) => h.id), want.hits.map((h) => h.id), `ids for "${want.question}"`);
    answer.hits.forEach((hit, i) => {
      const expected = want.hits[i].score;
      assert.ok(Math.abs(hit.score - expected) <= 1e-4 * Math.max(1, Math.abs(expected)),
        `score ${hit.score} vs native ${expected} for "${want.question}" rank ${i}`);
    });
  });
}
