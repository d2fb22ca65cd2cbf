// The wasm package in Node: the CPU path returns the native run's passages, and the WebGPU
// path, which Node lacks, rejects with a clear error instead of killing the module.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { initSync, demoSearchCpu, demoSearchWebGpu, questions, passages } from "../pkg/realm.js";
import { nativeReport, assertSameAnswers } from "./expected.mjs";

initSync({ module: readFileSync(new URL("../pkg/realm_bg.wasm", import.meta.url)) });
const K = 3;

test("the CPU search in Node returns the native run's passages", () => {
  const result = demoSearchCpu(questions(), K);
  assert.equal(result.backend, "cpu");
  assertSameAnswers(result, nativeReport());
  assert.equal(passages().length, 10);
});

test("bad arguments are errors, not panics", () => {
  assert.throws(() => demoSearchCpu(questions(), 0), /k must be at least 1/);
  const huge = "word ".repeat(5000);
  assert.throws(() => demoSearchCpu([huge], K), /longer than the model/);
  // The module still works after the errors.
  assertSameAnswers(demoSearchCpu(questions(), K), nativeReport());
});

test("WebGPU is absent in Node, and asking for it rejects cleanly", async () => {
  await assert.rejects(demoSearchWebGpu(questions(), K), /navigator\.gpu/);
  assertSameAnswers(demoSearchCpu(questions(), K), nativeReport());
});
