// The wasm package in Node: the CPU path returns the native run's passages, and the WebGPU
// path, which Node lacks, rejects with a clear error instead of killing the module.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  initSync, demoSearchCpu, demoSearchWebGpu, questions, passages, buildShard, ShardIndex,
} from "../pkg/realm.js";
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
  // One batch of 1,025 questions would grow the attention without bound: refused by count.
  assert.throws(() => demoSearchCpu(Array(1025).fill("who wrote hamlet"), K), /1025 questions: a demo search takes at most 1024/);
  // The module still works after the errors.
  assertSameAnswers(demoSearchCpu(questions(), K), nativeReport());
});

test("WebGPU is absent in Node, and asking for it rejects cleanly", async () => {
  await assert.rejects(demoSearchWebGpu(questions(), K), /navigator\.gpu/);
  assertSameAnswers(demoSearchCpu(questions(), K), nativeReport());
});

test("a shard built from bytes searches like brute force, and damaged bytes throw", () => {
  const dim = 8, n = 300;
  const vectors = new Float32Array(n * dim).map((_, i) => Math.sin(i * 12.9898) * 0.5);
  const ids = Uint32Array.from({ length: n }, (_, i) => 1000 + i);
  const bytes = buildShard(vectors, dim, ids, "f32");
  const index = ShardIndex.fromBytes(bytes);
  assert.equal(index.length, n);
  assert.equal(index.elementType, "f32");
  const query = vectors.slice(17 * dim, 18 * dim);
  const scores = Array.from({ length: n }, (_, r) =>
    query.reduce((s, q, j) => s + q * vectors[r * dim + j], 0));
  const best = scores.map((s, r) => [s, r]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  const hits = index.search(query, 5);
  assert.deepEqual(hits.map((h) => h.id), best.map(([, r]) => 1000 + r));
  for (const [h, [s]] of hits.map((h, i) => [h, best[i]])) assert.ok(Math.abs(h.score - s) < 1e-4);
  // A k past the rows (here the largest a u32 holds) gives them all, once any row was removed
  // too: no capacity overflow trapping the module, no wrapped count.
  index.remove(1000);
  index.remove(1001);
  assert.equal(index.search(query, 2 ** 32 - 1).length, n - 2);

  const int8 = ShardIndex.fromBytes(buildShard(vectors, dim, ids, "int8"));
  assert.equal(int8.elementType, "int8");
  const int8Ids = int8.search(query, 5).map((h) => h.id);
  const overlap = best.filter(([, r]) => int8Ids.includes(1000 + r)).length;
  assert.ok(overlap >= 4, `int8 top-5 shares ${overlap} of the f32 top-5`);

  // The wasm int8 scan (simd128) against the same arithmetic in plain JavaScript: rows and
  // query quantised to int8 (scale max|x| / 127), integer dots, score = dot * scale * scale.
  const quantise = (row) => {
    const scale = row.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127;
    return { scale, codes: Array.from(row, (v) => Math.max(-127, Math.min(127, Math.round(v / scale)))) };
  };
  for (const dim2 of [16, 37, 384]) {
    const n2 = 500;
    const v2 = new Float32Array(n2 * dim2).map((_, i) => Math.sin(i * 0.7 + dim2) * Math.cos(i * 1.3));
    const shard2 = ShardIndex.fromBytes(buildShard(v2, dim2, Uint32Array.from({ length: n2 }, (_, i) => i), "int8"));
    const q2 = new Float32Array(dim2).map((_, j) => Math.cos(j * 2.1));
    const q = quantise(q2);
    const expected = Array.from({ length: n2 }, (_, r) => {
      const row = quantise(v2.subarray(r * dim2, (r + 1) * dim2));
      const dot = row.codes.reduce((s, c, j) => s + c * q.codes[j], 0);
      return [Math.fround(dot * Math.fround(q.scale * row.scale)), r];
    }).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 10);
    const got = shard2.search(q2, 10);
    assert.deepEqual(got.map((h) => h.id), expected.map(([, r]) => r), `dim ${dim2}`);
    got.forEach((h, i) => assert.ok(Math.abs(h.score - expected[i][0]) <= 1e-6 * Math.abs(expected[i][0]), `dim ${dim2}: ${h.score} vs ${expected[i][0]}`));
  }

  const damaged = bytes.slice();
  damaged[200] ^= 1;
  assert.throws(() => ShardIndex.fromBytes(damaged), /checksum/);
  assert.throws(() => ShardIndex.fromBytes(bytes.slice(0, 100)), /truncated/);
  assert.throws(() => ShardIndex.fromBytes(new Uint8Array([1, 2, 3])), /REALMIDX/);
  assert.throws(() => index.search(new Float32Array(3), 5), /8/);
  assert.throws(() => buildShard(vectors, dim, ids, "f64"), /element type/);

  const top = 1000 + best[0][1];
  index.remove(top);
  assert.equal(index.search(query, 1)[0].id, 1000 + best[1][1]);
  index.add(5, query.map((v) => v * 10));
  assert.equal(index.search(query, 1)[0].id, 5);
  assert.throws(() => index.remove(top), /not in the index/);
});
