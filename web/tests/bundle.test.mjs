// A bundle (`realm bundle`: a tar archive) unpacks into the engine's seven files, byte for byte,
// and a cut-off, damaged or incomplete one is a typed error naming "bundle". Plain JavaScript:
// no wasm. The archives are written by the system's tar, as a user might.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unbundle, fileList, BUNDLE_MEMBERS, RealmError } from "../js/loader.js";

/** A tar archive of `names` (then `appended` again, each a second member of its name). */
function archive(names, format = "ustar", appended = []) {
  const dir = mkdtempSync(join(tmpdir(), "realm-bundle-"));
  const contents = {};
  names.forEach((name, i) => {
    // Sizes around the 512-byte blocks: empty, short, exact, one over.
    const bytes = Buffer.alloc([0, 17, 512, 513, 1024, 3000, 40][i % 7], i + 1);
    writeFileSync(join(dir, name), bytes);
    contents[name] = bytes;
  });
  execFileSync("tar", [`--format=${format}`, "-cf", join(dir, "b.tar"), "-C", dir, ...names]);
  // Appended, not listed twice: tar stores a name listed twice as a link to the first.
  if (appended.length) execFileSync("tar", [`--format=${format}`, "-rf", join(dir, "b.tar"), "-C", dir, ...appended]);
  return { bytes: new Uint8Array(readFileSync(join(dir, "b.tar"))), contents };
}

const isBundleError = (pattern) => (e) =>
  e instanceof RealmError && e.code === "file" && e.file === "bundle" && pattern.test(e.message);

test("a bundle unpacks into the engine's seven files, byte for byte", () => {
  for (const format of ["ustar", "gnu", "pax"]) {
    const members = Object.keys(BUNDLE_MEMBERS);
    const { bytes, contents } = archive([...members, "README.txt"], format);
    const files = unbundle(bytes);
    assert.deepEqual(Object.keys(files).sort(), Object.values(BUNDLE_MEMBERS).sort(), format);
    for (const member of members) {
      assert.deepEqual(Buffer.from(files[BUNDLE_MEMBERS[member]]), contents[member], `${format}: ${member}`);
    }
  }
});

test("a cut-off, damaged or incomplete bundle names the bundle", () => {
  const { bytes } = archive(Object.keys(BUNDLE_MEMBERS));
  // Cut inside the last member's data (tar pads the archive with zeros past it), and inside
  // a header.
  const last = unbundle(bytes).passages;
  assert.throws(() => unbundle(bytes.subarray(0, last.byteOffset + 20)), isBundleError(/passages\.jsonl is cut off \(20 of its 40 bytes\)/));
  assert.throws(() => unbundle(bytes.subarray(0, 700)), isBundleError(/cut off|missing/));
  const damaged = bytes.slice();
  damaged[3] ^= 0xff; // the first member's name: the header's checksum no longer holds
  assert.throws(() => unbundle(damaged), isBundleError(/no tar header at byte 0/));
  assert.throws(() => unbundle(new TextEncoder().encode("{\"not\": \"a tar\"}".padEnd(600))), isBundleError(/no tar header/));
  const partial = archive(["config.json", "tokenizer.json", "index.shard"]).bytes;
  assert.throws(() => unbundle(partial), isBundleError(/model\.safetensors, reader\.json, reader\.safetensors, passages\.jsonl missing/));
  // A size field that is no octal number, with a checksum that holds: "-1000" once kept the
  // reader at the same header for ever, "zzz" read as no bytes.
  for (const size of ["-1000", "zzz"]) {
    const odd = withSizeField(bytes, 0, size);
    assert.throws(() => unbundle(odd), isBundleError(new RegExp(`member at byte 0 has no size \\(its field reads "${size}"\\)`)));
  }
  // A member twice.
  const twice = archive(Object.keys(BUNDLE_MEMBERS), "ustar", ["config.json"]).bytes;
  assert.throws(() => unbundle(twice), isBundleError(/config\.json is in it twice/));
});

test("members named like an object's own properties are other files, not engine files", () => {
  const { bytes } = archive([...Object.keys(BUNDLE_MEMBERS), "toString", "constructor"]);
  assert.deepEqual(Object.keys(unbundle(bytes)).sort(), Object.values(BUNDLE_MEMBERS).sort());
});

/** A copy of the tar `bytes` whose header at `at` says `size` as its size, checksum redone. */
function withSizeField(bytes, at, size) {
  const copy = bytes.slice();
  const header = copy.subarray(at, at + 512);
  header.fill(0, 124, 136);
  header.set(new TextEncoder().encode(size), 124);
  const sum = header.reduce((s, b, i) => s + (i >= 148 && i < 156 ? 32 : b), 0);
  header.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return copy;
}

test("a bundle is the only file fetched, and not given beside the separate files", () => {
  assert.deepEqual(fileList({ bundle: "demo.realm.tar" }, "https://example.org/qa/"),
    [{ name: "bundle", url: "https://example.org/qa/demo.realm.tar" }]);
  assert.deepEqual(fileList({ files: { bundle: new Uint8Array(0) } }, "https://example.org/"), []);
  assert.throws(() => fileList({ bundle: "b.tar", index: "i.shard" }, "https://example.org/"),
    (e) => e.code === "options" && e.file === "bundle");
});

test("a model directory's question-embedder files are fetched as optional, and a bundle may hold them", () => {
  const list = fileList({ model: "m", index: "i.shard", passages: "p.jsonl" }, "https://example.org/qa/");
  assert.deepEqual(list.filter((f) => f.optional), [
    { name: "query.json", url: "https://example.org/qa/m/query.json", optional: true },
    { name: "query.safetensors", url: "https://example.org/qa/m/query.safetensors", optional: true },
  ]);
  assert.equal(list.length, 9);
  // Given as bytes, they are not fetched.
  const given = fileList({ model: "m", index: "i.shard", passages: "p.jsonl", files: { "query.json": new Uint8Array(0) } }, "https://example.org/");
  assert.deepEqual(given.filter((f) => f.optional).map((f) => f.name), ["query.safetensors"]);
  // A bundle without them is whole; with them, they come out under their own names.
  const required = Object.keys(BUNDLE_MEMBERS).filter((m) => !m.startsWith("query."));
  assert.deepEqual(Object.keys(unbundle(archive(required).bytes)).sort(), required.map((m) => BUNDLE_MEMBERS[m]).sort());
  const files = unbundle(archive(Object.keys(BUNDLE_MEMBERS)).bytes);
  assert.ok(files["query.json"] instanceof Uint8Array && files["query.safetensors"] instanceof Uint8Array);
});
