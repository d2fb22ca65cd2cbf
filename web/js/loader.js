// Fetching the engine's seven files (with progress per file and the Cache API) and building
// the wasm Engine from their bytes. Shared by the worker, the in-page engine and Node.

/** The files of a model directory, in the order `new Engine(...)` takes them. */
export const MODEL_FILES = ["config.json", "tokenizer.json", "model.safetensors", "reader.json", "reader.safetensors"];

/** Cache API entries are versioned: a new package version never reads an old one's files. */
export const CACHE_NAME = "realm-qa-v1";

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

/**
 * [{ name, url }] for the files given as URLs (absolute, resolved against `base`): the model
 * directory's five, the index, the passages. Files given as bytes in `files` are left out.
 */
export function fileList({ model, index, passages, files = {} }, base) {
  const resolve = (u, b) => {
    try { return new URL(u, b).href; } catch { throw new RealmError("options", `not a URL: ${u}`); }
  };
  const list = [];
  if (model) {
    const dir = resolve(String(model).endsWith("/") ? String(model) : model + "/", base);
    list.push(...MODEL_FILES.map((name) => ({ name, url: resolve(name, dir) })));
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

async function readBody(response, file, onProgress, signal) {
  const total = Number(response.headers.get("content-length")) || null;
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
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.({ file, phase: "download", loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

/**
 * The bytes of one file: from the cache where it holds the URL, else fetched (and then put
 * in the cache). Returns { bytes, fromCache }.
 */
export async function fetchFile({ name, url }, { signal, cache = true, onProgress } = {}) {
  const store = cache && globalThis.caches ? await globalThis.caches.open(typeof cache === "string" ? cache : CACHE_NAME).catch(() => null) : null;
  const cached = store ? await store.match(url) : undefined;
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
  if (!response.ok) throw new RealmError("fetch", `${name}: ${url} answered HTTP ${response.status}`, name);
  const bytes = await readBody(response, name, onProgress, signal);
  if (store) {
    await store.put(url, new Response(bytes, { headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) } })).catch(() => {});
  }
  return { bytes, fromCache: false };
}

/** Builds the wasm Engine on `device` from { name: bytes }; a file the engine refuses is a RealmError naming it. */
export async function buildEngine(Engine, bytes, device = "cpu") {
  const order = [...MODEL_FILES, "index", "passages"];
  const missing = order.filter((n) => !(bytes[n] instanceof Uint8Array));
  if (missing.length) throw new RealmError("options", `not bytes (a Uint8Array): ${missing.join(", ")}`, missing[0]);
  try {
    const args = order.map((n) => bytes[n]);
    return device === "webgpu" ? await Engine.newWebGpu(...args) : new Engine(...args);
  } catch (e) {
    const message = String(e?.message ?? e);
    const file = order.find((n) => message.startsWith(n)) ?? null;
    throw new RealmError("file", message, file);
  }
}

/** Asks the built engine; an empty question is refused before it reaches the model. */
export async function askEngine(engine, question, topK) {
  if (typeof question !== "string" || question.trim() === "") throw new RealmError("question", "the question is empty");
  if (!Number.isInteger(topK) || topK < 1) throw new RealmError("options", `topK must be a whole number of at least 1, not ${topK}`);
  try {
    return engine.device === "webgpu" ? await engine.askAsync(question, topK) : engine.ask(question, topK);
  } catch (e) {
    throw new RealmError("engine", String(e?.message ?? e));
  }
}
