// Fetching the engine's seven files (with progress per file and the Cache API) and the two of
// a fine-tuned question embedder where the model has one, or one bundle holding them, and
// building the wasm Engine from their bytes. Shared by the worker, the in-page engine and Node.

/** The files of a model directory, in the order `new Engine(...)` takes them. */
export const MODEL_FILES = ["config.json", "tokenizer.json", "model.safetensors", "reader.json", "reader.safetensors"];

/**
 * A model directory's optional files: the fine-tuned question embedder (`realm
 * finetune-retriever`), both or neither. Where the directory answers 404 for both, questions
 * are embedded with the base model.
 */
export const QUERY_FILES = ["query.json", "query.safetensors"];

/**
 * The Cache API cache files are kept in, by URL, until the engine refuses one (then this
 * load's entries go, and the next load fetches afresh). A file changed at the same URL is
 * not fetched again: give changed files new URLs (or another cache name).
 */
export const CACHE_NAME = "realm-qa-v1";

/** The most passages one answer reads (the engine's MAX_TOP_K). */
export const MAX_TOP_K = 100;

/** An error with a `code` a page can branch on, and the file it concerns where there is one. */
export class RealmError extends Error {
  constructor(code, message, file) {
    super(message);
    this.name = code === "aborted" ? "AbortError" : "RealmError";
    this.code = code;
    this.file = file ?? null;
  }
}

/** The same error after crossing a worker boundary (structured clone drops the class). */
export function toPlain(e) {
  if (e instanceof RealmError) return { code: e.code, message: e.message, file: e.file };
  if (e?.name === "AbortError") return { code: "aborted", message: "aborted", file: null };
  return { code: "engine", message: String(e?.message ?? e), file: null };
}
export function fromPlain(p) {
  return new RealmError(p.code, p.message, p.file);
}

/** A bundle's members (`realm bundle` writes them in this order; the last two where the reader has a question embedder) and the engine file each is. */
export const BUNDLE_MEMBERS = {
  "config.json": "config.json", "tokenizer.json": "tokenizer.json", "model.safetensors": "model.safetensors",
  "reader.json": "reader.json", "reader.safetensors": "reader.safetensors", "index.shard": "index", "passages.jsonl": "passages",
  "query.json": "query.json", "query.safetensors": "query.safetensors",
};

/**
 * The engine's files in a bundle (a tar archive, as `realm bundle` writes): { name: bytes },
 * views into `bytes` (nothing copied). A damaged, cut-off or incomplete bundle is a
 * RealmError naming "bundle".
 */
export function unbundle(bytes) {
  const fail = (why) => { throw new RealmError("file", `bundle: ${why}`, "bundle"); };
  const decoder = new TextDecoder();
  const field = (at, length) => {
    let end = at;
    while (end < at + length && bytes[end] !== 0) end++;
    return decoder.decode(bytes.subarray(at, end));
  };
  const files = {};
  let at = 0;
  while (at + 512 <= bytes.length) {
    const header = bytes.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break; // the end of the archive
    // The checksum: the header's bytes summed with its own 8-byte field as spaces.
    const sum = header.reduce((s, b, i) => s + (i >= 148 && i < 156 ? 32 : b), 0);
    if (parseInt(field(at + 148, 8).trim(), 8) !== sum) fail(`no tar header at byte ${at} (damaged, or not a bundle from \`realm bundle\`)`);
    const sizeField = field(at + 124, 12).trim() || "0";
    if (!/^[0-7]+$/.test(sizeField)) fail(`the member at byte ${at} has no size (its field reads "${sizeField}"): damaged, or not a bundle from \`realm bundle\``);
    const size = parseInt(sizeField, 8);
    const prefix = field(at + 345, 155);
    const name = (prefix ? `${prefix}/` : "") + field(at, 100).replace(/^\.\//, "");
    const start = at + 512;
    if (start + size > bytes.length) fail(`${name} is cut off (${bytes.length - start} of its ${size} bytes): the download was truncated`);
    const regular = header[156] === 0 || header[156] === 48; // "0" or NUL: a file
    if (regular && Object.hasOwn(BUNDLE_MEMBERS, name)) {
      if (BUNDLE_MEMBERS[name] in files) fail(`${name} is in it twice (not a bundle from \`realm bundle\`)`);
      files[BUNDLE_MEMBERS[name]] = bytes.subarray(start, start + size);
    }
    at = start + Math.ceil(size / 512) * 512;
  }
  const missing = Object.keys(BUNDLE_MEMBERS).filter((m) => !(BUNDLE_MEMBERS[m] in files) && !QUERY_FILES.includes(m));
  if (missing.length) fail(`${missing.join(", ")} missing (cut off, or not a bundle from \`realm bundle\`)`);
  return files;
}

/**
 * [{ name, url, optional }] for the files given as URLs (absolute, resolved against `base`):
 * the model directory's five and its two optional ones (QUERY_FILES), the index, the
 * passages; or the one bundle holding them. Files given as bytes in `files` are left out.
 */
export function fileList({ model, index, passages, bundle, files = {} }, base) {
  const resolve = (u, b) => {
    try { return new URL(u, b).href; } catch { throw new RealmError("options", `not a URL: ${u}`); }
  };
  if (bundle || files.bundle) {
    if (model || index || passages) throw new RealmError("options", "give 'bundle' or 'model', 'index' and 'passages', not both", "bundle");
    return files.bundle ? [] : [{ name: "bundle", url: resolve(bundle, base) }];
  }
  const list = [];
  if (model) {
    const dir = resolve(String(model).endsWith("/") ? String(model) : model + "/", base);
    list.push(...MODEL_FILES.map((name) => ({ name, url: resolve(name, dir) })));
    list.push(...QUERY_FILES.map((name) => ({ name, url: resolve(name, dir), optional: true })));
  }
  if (index) list.push({ name: "index", url: resolve(index, base) });
  if (passages) list.push({ name: "passages", url: resolve(passages, base) });
  const needed = [...MODEL_FILES, "index", "passages"];
  const missing = needed.filter((n) => !(n in files) && !list.some((f) => f.name === n));
  if (missing.length) {
    const what = missing.some((n) => MODEL_FILES.includes(n)) ? "'model' (the model directory's URL)" : `'${missing[0]}'`;
    throw new RealmError("options", `${what} is missing: give its URL or its bytes in 'files'`, missing[0]);
  }
  return list.filter((f) => !(f.name in files));
}

/**
 * The fraction of a load done, from each file's latest progress { loaded, total } (total null
 * where the server sent no usable Content-Length: compressed, or chunked). Such a file counts
 * as done as far as it has come, so it neither runs the bar ahead of the files of known size
 * nor holds it back; files not yet heard of count nothing. Below 1 until the load resolves;
 * null while no file heard of has a known size (nothing to measure against: an indeterminate
 * bar).
 */
export function loadFraction(progressByFile) {
  let done = 0;
  let total = 0;
  let known = false;
  for (const { loaded, total: size } of progressByFile.values()) {
    known ||= size != null;
    done += Math.min(loaded, size ?? loaded);
    total += size ?? loaded;
  }
  if (!known) return progressByFile.size ? null : 0;
  return total ? Math.min(0.99, done / total) : 0;
}

async function readBody(response, file, onProgress, signal) {
  const total = Number(response.headers.get("content-length")) || null;
  // A compressed response's Content-Length counts what was sent, not what is read.
  const encoded = !["", "identity"].includes(response.headers.get("content-encoding") ?? "");
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onProgress?.({ file, phase: "download", loaded: bytes.length, total: bytes.length });
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    if (signal?.aborted) { reader.cancel(); throw new RealmError("aborted", "aborted", file); }
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (signal?.aborted) throw new RealmError("aborted", "aborted", file);
      throw new RealmError("fetch", `${file}: the download broke off after ${loaded} bytes: ${e.message}`, file);
    }
    if (chunk.done) break;
    chunks.push(chunk.value);
    loaded += chunk.value.length;
    onProgress?.({ file, phase: "download", loaded, total: encoded ? null : total });
  }
  // Checked before the bytes are cached: a cut-off file would otherwise be read from the
  // cache on every later visit.
  if (total !== null && !encoded && loaded !== total) {
    throw new RealmError("fetch", `${file}: ${loaded} of its ${total} bytes arrived`, file);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

/** The Cache API cache the `cache` option names (true: CACHE_NAME), or null: none asked for, none in this context, or refused. */
async function openCache(cache) {
  if (!cache || !globalThis.caches) return null;
  return globalThis.caches.open(typeof cache === "string" ? cache : CACHE_NAME).catch(() => null);
}

/**
 * The bytes of one file: from the cache where it holds the URL, else fetched (and then put
 * in the cache). Returns { bytes, fromCache }; bytes null for an `optional` file the server
 * answers 404 (or 410) for.
 */
export async function fetchFile({ name, url, optional = false }, { signal, cache = true, onProgress } = {}) {
  const store = await openCache(cache);
  const cached = store ? await store.match(url).catch(() => undefined) : undefined;
  if (cached) {
    const bytes = await readBody(cached, name, (p) => onProgress?.({ ...p, phase: "cache" }), signal);
    return { bytes, fromCache: true };
  }
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (e) {
    if (signal?.aborted) throw new RealmError("aborted", "aborted", name);
    throw new RealmError("fetch", `${name}: cannot fetch ${url}: ${e.message}`, name);
  }
  if (optional && (response.status === 404 || response.status === 410)) return { bytes: null, fromCache: false };
  if (!response.ok) throw new RealmError("fetch", `${name}: ${url} answered HTTP ${response.status}`, name);
  const bytes = await readBody(response, name, onProgress, signal);
  if (store) {
    await store.put(url, new Response(bytes, { headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) } })).catch(() => {});
  }
  return { bytes, fromCache: false };
}

/** Removes `urls` from the cache `cache` (as fetchFile names it) where they are; never throws. */
export async function forgetCached(urls, cache = true) {
  const store = await openCache(cache);
  await Promise.all(urls.map((url) => store?.delete(url).catch(() => false)));
}

/**
 * Builds the wasm Engine on `device` from { name: bytes } (QUERY_FILES optional); a file the
 * engine refuses is a RealmError naming it.
 */
export async function buildEngine(Engine, bytes, device = "cpu") {
  const order = [...MODEL_FILES, "index", "passages", ...QUERY_FILES];
  const missing = order.filter((n) => !(bytes[n] instanceof Uint8Array) && !(QUERY_FILES.includes(n) && bytes[n] == null));
  if (missing.length) throw new RealmError("options", `not bytes (a Uint8Array): ${missing.join(", ")}`, missing[0]);
  try {
    const args = order.map((n) => bytes[n] ?? undefined);
    return device === "webgpu" ? await Engine.newWebGpu(...args) : new Engine(...args);
  } catch (e) {
    const message = String(e?.message ?? e);
    const file = order.find((n) => message.startsWith(n)) ?? null;
    // The engine names the file it refuses first; a WebGPU device it could not get is a
    // `device` error, anything else the engine's own.
    const code = file ? "file" : message.startsWith("webgpu:") ? "device" : "engine";
    throw new RealmError(code, message, file);
  }
}

/**
 * Frees a wasm engine. One left borrowed by a trap inside it (a bug: nothing the engine is
 * given should make it panic) cannot be freed; it is dropped rather than thrown from dispose().
 */
export function freeEngine(engine) {
  try {
    engine?.free();
  } catch {
    // Its memory stays with the module until the page or worker goes.
  }
}

/** Asks the built engine; an empty question is refused before it reaches the model. */
export async function askEngine(engine, question, topK) {
  if (typeof question !== "string" || question.trim() === "") throw new RealmError("question", "the question is empty");
  // The engine reads at most MAX_TOP_K passages an answer (core/src/qa/engine.rs).
  if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) throw new RealmError("options", `topK must be a whole number from 1 to ${MAX_TOP_K}, not ${topK}`);
  try {
    return engine.device === "webgpu" ? await engine.askAsync(question, topK) : engine.ask(question, topK);
  } catch (e) {
    const message = String(e?.message ?? e);
    throw new RealmError(message.startsWith("the question is empty") ? "question" : "engine", message);
  }
}
