// The engine in the current thread (inside the worker, in Node, or in a page that asks for
// no worker): the wasm module initialised once per kind (the CPU build, or the WebGPU build,
// a separate file fetched only when WebGPU is used), the files fetched, the Engine built.
// Both glue modules are imported statically (12 KB gzipped for the WebGPU one): a dynamic
// import inside the worker would make bundlers split the worker's code, which Vite's default
// worker format cannot. Each .wasm is fetched only when its kind is initialised.
import * as cpuGlue from "../pkg/realm.js";
import * as webgpuGlue from "../pkg/webgpu/realm.js";
import { RealmError, fetchFile, buildEngine, unbundle, forgetCached } from "./loader.js";

const modules = { cpu: null, webgpu: null };
let exports = null;

/** Bytes of the wasm module's linear memory: it only grows, so this is its peak so far. */
export function wasmMemoryBytes() {
  return exports?.memory?.buffer.byteLength ?? 0;
}

/** The wasm-bindgen module of `kind` ("cpu" or "webgpu"), initialised from `wasm` (a URL, a Response, bytes or a Module) or the package's own file. */
export function wasmModule(kind = "cpu", wasm) {
  modules[kind] ??= (async () => {
    const m = kind === "webgpu" ? webgpuGlue : cpuGlue;
    const own = kind === "webgpu" ? new URL("../pkg/webgpu/realm_bg.wasm", import.meta.url) : new URL("../pkg/realm_bg.wasm", import.meta.url);
    const source = (kind === "cpu" ? wasm : undefined) ?? own;
    if (source instanceof Uint8Array || source instanceof ArrayBuffer || source instanceof WebAssembly.Module) {
      exports = m.initSync({ module: source });
    } else {
      exports = await m.default({ module_or_path: source });
    }
    return m;
  })().catch((e) => {
    modules[kind] = null;
    const file = kind === "webgpu" ? "realm-webgpu.wasm" : "realm.wasm";
    throw new RealmError("fetch", `${file}: cannot load the WebAssembly module: ${e.message}`, file);
  });
  return modules[kind];
}

/**
 * Where the encoders run: "cpu" when asked; "webgpu" when asked and the browser has an
 * adapter (else an error saying so); "auto": WebGPU on a hardware adapter, else the CPU.
 */
export async function pickDevice(device = "auto") {
  if (!["auto", "cpu", "webgpu"].includes(device)) throw new RealmError("options", `device "${device}": use auto, webgpu or cpu`);
  if (device === "cpu") return "cpu";
  const gpu = globalThis.navigator?.gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (device === "webgpu") {
    if (!adapter) throw new RealmError("device", `device "webgpu": ${gpu ? "navigator.gpu.requestAdapter() found no adapter" : "this browser has no navigator.gpu"}; use device "auto" or "cpu"`);
    return "webgpu";
  }
  return adapter && !adapter.info?.isFallbackAdapter ? "webgpu" : "cpu";
}

/**
 * Fetches `urls` ([{ name, url, optional }]) beside the bytes already in `files` (a "bundle"
 * among them is unpacked into the files it holds), and builds the
 * Engine on `device`. `onProgress({ file, phase, loaded, total })`: phase "download", "cache"
 * or "build". Resolves to { engine, fromCache, device, downloaded } (bytes from the network).
 */
export async function openLocal({ urls = [], files = {}, cache = true, wasm, device = "auto" } = {}, onProgress, signal) {
  let kind = await pickDevice(device);
  // "auto" chose WebGPU: where its build cannot load or its device cannot be had (an adapter
  // is no promise of a device), the CPU answers instead.
  const fallBack = (e) => device === "auto" && kind === "webgpu" && !["file", "aborted", "options"].includes(e?.code);
  let m = await wasmModule(kind, wasm).catch((e) => {
    if (!fallBack(e)) throw e;
    kind = "cpu";
    return wasmModule("cpu", wasm);
  });
  const bytes = { ...files };
  let downloaded = 0;
  const got = await Promise.all(urls.map((f) => fetchFile(f, { signal, cache, onProgress })));
  // An optional file the server does not have (null bytes) is left out.
  const present = got.filter((g, i) => {
    if (g.bytes === null) return false;
    bytes[urls[i].name] = g.bytes;
    if (!g.fromCache) downloaded += g.bytes.length;
    return true;
  });
  if (signal?.aborted) throw new RealmError("aborted", "aborted");
  onProgress?.({ file: null, phase: "build", loaded: 0, total: null });
  let engine;
  try {
    if (bytes.bundle) {
      Object.assign(bytes, unbundle(bytes.bundle));
      delete bytes.bundle;
    }
    engine = await buildEngine(m.Engine, bytes, kind).catch(async (e) => {
      if (!fallBack(e)) throw e;
      kind = "cpu";
      m = await wasmModule("cpu", wasm);
      return buildEngine(m.Engine, bytes, kind);
    });
  } catch (e) {
    // A file refused (damaged in the cache, or a page's file that changed at its URL while
    // the others did not): the next load fetches them all afresh instead of failing again.
    if (e?.code === "file") await forgetCached(urls.map((f) => f.url), cache);
    throw e;
  }
  return { engine, fromCache: present.length > 0 && present.every((g) => g.fromCache), device: kind, downloaded };
}
