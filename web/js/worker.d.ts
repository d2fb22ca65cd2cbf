// realm-qa/worker: the engine's Web Worker module (js/worker.js). `load()` starts it, from
// beside js/index.js; it is exported so that bundlers and publint see it, not to be started by
// hand (its messages are the package's own). It exports nothing.
export {};
