// The engine's Web Worker: loads and answers off the page's thread. Messages in:
// { id, type: "load", options } | { id, type: "ask", question, topK } | { id, type: "stats" }
// | { type: "abort" };
// out: { id, type: "progress", progress } | { id, ok: true, value } | { id, ok: false, error }.
import { openLocal, wasmMemoryBytes } from "./local.js";
import { askEngine, freeEngine, toPlain, RealmError } from "./loader.js";

let engine = null;
let controller = null;

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  if (type === "abort") {
    controller?.abort();
    return;
  }
  try {
    if (type === "load") {
      controller = new AbortController();
      const progress = (p) => self.postMessage({ id, type: "progress", progress: p });
      const opened = await openLocal(data.options, progress, controller.signal);
      freeEngine(engine);
      engine = opened.engine;
      self.postMessage({ id, ok: true, value: { fromCache: opened.fromCache, device: opened.device, downloaded: opened.downloaded, passageCount: engine.passageCount, retriever: engine.retriever } });
    } else if (type === "stats") {
      self.postMessage({ id, ok: true, value: { wasmMemory: wasmMemoryBytes() } });
    } else if (type === "ask") {
      if (!engine) throw new RealmError("state", "ask() before load() finished");
      self.postMessage({ id, ok: true, value: await askEngine(engine, data.question, data.topK) });
    } else {
      throw new RealmError("state", `unknown message ${type}`);
    }
  } catch (e) {
    self.postMessage({ id, ok: false, error: toPlain(e) });
  }
};
