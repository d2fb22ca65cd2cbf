// The engine in the current thread (inside the worker, in Node, or in a page that asks for
// no worker): the wasm module initialised once, the files fetched, the Engine built.
import init, { initSync, Engine } from "../pkg/realm.js";
import { RealmError, fetchFile, buildEngine } from "./loader.js";

let ready = null;
let exports = null;

/** Bytes of the wasm module's linear memory: it only grows, so this is its peak so far. */
export function wasmMemoryBytes() {
  return exports?.memory?.buffer.byteLength ?? 0;
}

/** Initialises the wasm module once: from `wasm` (a URL, a Response, bytes or a Module). */
export function initWasm(wasm) {
  if (!ready) {
    ready = (async () => {
      const source = wasm ?? new URL("../pkg/realm_bg.wasm", import.meta.url);
      if (source instanceof Uint8Array || source instanceof ArrayBuffer || source instanceof WebAssembly.Module) {
        exports = initSync({ module: source });
      } else {
        exports = await init({ module_or_path: source });
      }
    })().catch((e) => {
      ready = null;
      throw new RealmError("fetch", `realm.wasm: cannot load the WebAssembly module: ${e.message}`, "realm.wasm");
    });
  }
  return ready;
}

/**
 * Fetches `urls` ([{ name, url }]) beside the bytes already in `files`, and builds the
 * Engine. `onProgress({ file, phase, loaded, total })`: phase "download", "cache" or "build".
 * Resolves to { engine, fromCache, device, bytes } (bytes downloaded, cached ones excluded).
 */
export async function openLocal({ urls = [], files = {}, cache = true, wasm } = {}, onProgress, signal) {
  await initWasm(wasm);
  const bytes = { ...files };
  let downloaded = 0;
  const got = await Promise.all(urls.map((f) => fetchFile(f, { signal, cache, onProgress })));
  urls.forEach((f, i) => {
    bytes[f.name] = got[i].bytes;
    if (!got[i].fromCache) downloaded += got[i].bytes.length;
  });
  if (signal?.aborted) throw new RealmError("aborted", "aborted");
  onProgress?.({ file: null, phase: "build", loaded: 0, total: null });
  const engine = buildEngine(Engine, bytes);
  return { engine, fromCache: urls.length > 0 && got.every((g) => g.fromCache), device: "cpu", downloaded };
}
