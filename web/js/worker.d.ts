// realm-qa/worker: the engine's Web Worker module (js/worker.js). Load it with
// `new Worker(new URL("realm-qa/worker", import.meta.url), { type: "module" })` only to host it
// yourself; `load()` starts it for you. It exports nothing.
export {};
