// realm-qa: REALM question answering in the page. `load()` fetches the model, the index and
// the passages (progress per file, Cache API), builds the engine in a Web Worker by default,
// and resolves to a `Realm` whose `ask()` answers with the span, its passage and offsets.
import { RealmError, fileList, fromPlain, askEngine, freeEngine } from "./loader.js";

export { RealmError, MODEL_FILES, QUERY_FILES, BUNDLE_MEMBERS, CACHE_NAME } from "./loader.js";

function pageBase() {
  return globalThis.document?.baseURI ?? globalThis.location?.href ?? undefined;
}

/** The worker transport: one request at a time per id; abort() rejects what is pending, cancel(id) one request. */
class WorkerTransport {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    this.next = 1;
    worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.type === "progress") return p.onProgress?.(data.progress);
      this.pending.delete(data.id);
      data.ok ? p.resolve(data.value) : p.reject(fromPlain(data.error));
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.failAll(new RealmError("engine", `the worker failed: ${e.message ?? "unknown error"}`));
    };
  }
  call(message, onProgress, signal) {
    if (!this.worker) return Promise.reject(new RealmError("disposed", "this engine was disposed"));
    const id = this.next++;
    return withSignal(new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...message, id });
    }), signal, () => this.cancel(id));
  }
  /** Rejects request `id` alone with an AbortError: the worker finishes it, and its reply is dropped. */
  cancel(id) {
    const p = this.pending.get(id);
    this.pending.delete(id);
    p?.reject(new RealmError("aborted", "aborted"));
  }
  abort() {
    this.worker?.postMessage({ type: "abort" });
    this.failAll(new RealmError("aborted", "aborted"));
  }
  failAll(error) {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
  close() {
    this.failAll(new RealmError("disposed", "this engine was disposed"));
    this.worker?.terminate();
    this.worker = null;
  }
}

/**
 * `promise`, rejected by `cancel()` if `signal` aborts first (its listener removed once the
 * promise settles).
 */
function withSignal(promise, signal, cancel) {
  if (!signal) return promise;
  if (signal.aborted) cancel();
  signal.addEventListener("abort", cancel, { once: true });
  return promise.finally(() => signal.removeEventListener("abort", cancel));
}

/** The same calls in this thread (Node, or `worker: false`). */
class LocalTransport {
  constructor() {
    this.engine = null;
    this.controller = null;
    this.closed = false;
    // Rejecters of the asks in flight (a WebGPU ask awaits the GPU; a CPU one runs to its end
    // before abort() can be called, so abort() finds none of those).
    this.waiting = new Set();
  }
  async call(message, onProgress, signal) {
    if (this.closed) throw new RealmError("disposed", "this engine was disposed");
    if (message.type === "load") {
      const { openLocal } = await import("./local.js");
      this.controller = new AbortController();
      const opened = await openLocal(message.options, onProgress, this.controller.signal);
      freeEngine(this.engine);
      this.engine = opened.engine;
      return { fromCache: opened.fromCache, device: opened.device, downloaded: opened.downloaded, passageCount: this.engine.passageCount, retriever: this.engine.retriever };
    }
    if (message.type === "stats") {
      const { wasmMemoryBytes } = await import("./local.js");
      return { wasmMemory: wasmMemoryBytes() };
    }
    if (!this.engine) throw new RealmError("state", "ask() before load() finished");
    const asked = askEngine(this.engine, message.question, message.topK);
    let cancel;
    return withSignal(new Promise((resolve, reject) => {
      cancel = () => reject(new RealmError("aborted", "aborted"));
      this.waiting.add(reject);
      asked.then(resolve, reject).finally(() => this.waiting.delete(reject));
    }), signal, () => cancel());
  }
  abort() {
    this.controller?.abort();
    this.failAll(new RealmError("aborted", "aborted"));
  }
  failAll(error) {
    for (const reject of this.waiting) reject(error);
    this.waiting.clear();
  }
  close() {
    this.failAll(new RealmError("disposed", "this engine was disposed"));
    this.closed = true;
    freeEngine(this.engine);
    this.engine = null;
  }
}

/** A loaded engine. */
export class Realm {
  constructor(transport, info) {
    this.transport = transport;
    /** "cpu" or "webgpu": where the encoders run. */
    this.device = info.device;
    /** Whether every file came from the Cache API. */
    this.fromCache = info.fromCache;
    /** Bytes fetched from the network (0 when all came from the cache). */
    this.downloaded = info.downloaded;
    this.passageCount = info.passageCount;
    /** "fine-tuned" (the model's query.json and query.safetensors) or "zero-shot" (the base model): how questions are embedded. */
    this.retriever = info.retriever;
  }

  /** Answers `question` from the top `topK` passages (default 5). */
  async ask(question, { topK = 5, signal } = {}) {
    if (typeof question !== "string" || question.trim() === "") throw new RealmError("question", "the question is empty");
    if (signal?.aborted) throw new RealmError("aborted", "aborted");
    // This ask alone: the others in flight go on.
    return this.transport.call({ type: "ask", question, topK }, undefined, signal);
  }

  /** The engine's memory: { wasmMemory } (bytes of wasm linear memory, its peak so far). */
  stats() {
    return this.transport.call({ type: "stats" });
  }

  /** Rejects every pending ask with an AbortError (code "aborted"); the engine stays usable. */
  abort() {
    this.transport.abort();
  }

  /** Ends the worker and frees the engine's memory; later calls reject with code "disposed". */
  dispose() {
    this.transport.close();
  }
}

/**
 * The `wasm` option as the engine takes it: a URL string resolved against `base` like the
 * other files (the worker would otherwise resolve it against its own script), bytes as given.
 */
function wasmSource(wasm, base) {
  if (wasm instanceof URL) return wasm.href;
  if (typeof wasm !== "string" || base === undefined) return wasm;
  try { return new URL(wasm, base).href; } catch { throw new RealmError("options", `realm.wasm: not a URL: ${wasm}`, "realm.wasm"); }
}

/**
 * Loads the engine. Options: `model` (URL of a directory holding config.json, tokenizer.json,
 * model.safetensors, reader.json, reader.safetensors, and where it has a fine-tuned question
 * embedder query.json and query.safetensors), `index` (an index shard's URL),
 * `passages` (the passages' URL), or `bundle` (the URL of one file holding them all: `realm
 * bundle`), or their bytes in `files`; `worker` (default: where Workers
 * exist), `device` ("auto": WebGPU on a hardware adapter, else the CPU, also where WebGPU fails
 * to start; "webgpu"; "cpu"),
 * `cache` (true, false or a cache name), `wasm` (the CPU .wasm's URL or bytes),
 * `onProgress`, `signal`.
 */
export async function load(options = {}) {
  const { onProgress, signal, worker, ...rest } = options;
  const base = options.base ?? pageBase();
  const urls = fileList(rest, base);
  const files = rest.files ?? {};
  const wasm = wasmSource(rest.wasm, base);
  const message = { type: "load", options: { urls, files, cache: rest.cache ?? true, wasm, device: rest.device ?? "auto" } };
  // Before the worker starts: an aborted load leaves nothing running.
  if (signal?.aborted) throw new RealmError("aborted", "aborted");
  const useWorker = worker ?? typeof Worker !== "undefined";
  let transport;
  try {
    transport = useWorker
      ? new WorkerTransport(new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "realm-qa" }))
      : new LocalTransport();
  } catch (e) {
    // A page of another origin than the package's, or a Content-Security-Policy without worker-src.
    throw new RealmError("engine", `cannot start the engine's worker: ${e.message} (serve the package from the page's origin, or load with worker: false)`);
  }
  const onAbort = () => transport.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const info = await transport.call(message, onProgress);
    return new Realm(transport, info);
  } catch (e) {
    transport.close();
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
