// Types of realm-qa's main entry (js/index.js; Node: js/node.js, the same API).
import type { AskResult } from "../pkg/realm.js";
export type { AskResult, Answer, RetrievedPassage, Timings } from "../pkg/realm.js";

/** What went wrong: branch on `code`; `file` names the file where one is at fault. */
export type RealmErrorCode = "options" | "fetch" | "file" | "device" | "question" | "engine" | "aborted" | "disposed" | "state";

export declare class RealmError extends Error {
  readonly code: RealmErrorCode;
  /** "config.json", "tokenizer.json", "model.safetensors", "reader.json", "reader.safetensors", "query.json", "query.safetensors", "index", "passages", "bundle", "realm.wasm", "realm-webgpu.wasm", or null. */
  readonly file: string | null;
}

/** The five files a model directory holds. */
export declare const MODEL_FILES: readonly ["config.json", "tokenizer.json", "model.safetensors", "reader.json", "reader.safetensors"];
/** A model directory's two optional files, both or neither: a fine-tuned question embedder (`realm finetune-retriever`). Where the directory answers 404 for them, questions are embedded with the base model. */
export declare const QUERY_FILES: readonly ["query.json", "query.safetensors"];
/** A bundle's members (`realm bundle`; the query files where the reader has a question embedder) and the file of `FileName` each one is. */
export declare const BUNDLE_MEMBERS: Readonly<Record<"config.json" | "tokenizer.json" | "model.safetensors" | "reader.json" | "reader.safetensors" | "index.shard" | "passages.jsonl" | "query.json" | "query.safetensors", Exclude<FileName, "bundle">>>;
/** The Cache API cache the files are kept in, by URL, until the engine refuses one (a file changed at the same URL is not fetched again: give it a new URL). */
export declare const CACHE_NAME: string;

/** Progress of one file: "download" from the network, "cache" from the Cache API; "build" once all are in (file null). */
export interface LoadProgress {
  file: string | null;
  phase: "download" | "cache" | "build";
  loaded: number;
  /** Null when the server sent no Content-Length. */
  total: number | null;
}

export type FileName = "config.json" | "tokenizer.json" | "model.safetensors" | "reader.json" | "reader.safetensors" | "query.json" | "query.safetensors" | "index" | "passages" | "bundle";

export interface LoadOptions {
  /** URL of a directory holding config.json, tokenizer.json, model.safetensors, reader.json and reader.safetensors, and where it has a fine-tuned question embedder, query.json and query.safetensors (fetched where present: a 404 for both means none). */
  model?: string | URL;
  /** URL of an index shard (`realm index`) of the passages, embedded with the model. */
  index?: string | URL;
  /** URL of the passages: JSON lines {"title", "text"}, in the index's order. */
  passages?: string | URL;
  /** URL of one file holding them all (a tar archive from `realm bundle`), instead of `model`, `index` and `passages`. */
  bundle?: string | URL;
  /** Files as bytes instead of URLs ("bundle": a bundle's bytes; "query.json" and "query.safetensors" optional, both or neither). */
  files?: Partial<Record<FileName, Uint8Array>>;
  /** Relative URLs resolve against this (default: the page's base URL). */
  base?: string;
  /** Where the encoders run: "auto" (default: WebGPU on a hardware adapter, else the CPU, and the CPU too where WebGPU's build or device fails to start), "webgpu" (an error without an adapter or device) or "cpu". WebGPU loads the package's second wasm build. */
  device?: "auto" | "webgpu" | "cpu";
  /** Run the engine in a Web Worker (default: wherever Workers exist). */
  worker?: boolean;
  /** Keep fetched files in the Cache API (true: CACHE_NAME; a string: that cache). Default true. */
  cache?: boolean | string;
  /** The CPU build's .wasm: its URL (a relative one resolves against `base`, as the other files) or bytes (default: the package's own). The WebGPU build (device "webgpu", or "auto" on a GPU) always loads the package's own realm-webgpu.wasm. */
  wasm?: string | URL | Uint8Array | ArrayBuffer;
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
}

export interface AskOptions {
  /** Passages the reader reads (default 5; 1 to 100). */
  topK?: number;
  /** Rejects this ask alone with an AbortError (code "aborted"); other asks in flight go on. */
  signal?: AbortSignal;
}

/** A loaded engine. */
export declare class Realm {
  /** Where the encoders run. */
  readonly device: "cpu" | "webgpu";
  /** Whether every file came from the Cache API. */
  readonly fromCache: boolean;
  /** Bytes fetched from the network. */
  readonly downloaded: number;
  readonly passageCount: number;
  /** How questions are embedded: "fine-tuned" (the model's query.json and query.safetensors) or "zero-shot" (the base model's sentence embedder). */
  readonly retriever: "fine-tuned" | "zero-shot";
  /** Answers a question; rejects with a RealmError (code "question" for an empty one). */
  ask(question: string, options?: AskOptions): Promise<AskResult>;
  /** The engine's memory: bytes of wasm linear memory (it only grows: its peak so far). */
  stats(): Promise<{ wasmMemory: number }>;
  /** Rejects every pending ask with an AbortError (a RealmError, code "aborted"); the engine stays usable (a load is cancelled by its `signal` option, one ask by its own). (Without a worker, a CPU ask runs to its end before this can be called.) */
  abort(): void;
  /** Ends the worker and frees the engine; later calls reject with code "disposed". */
  dispose(): void;
}

/** Fetches the files (progress per file, cached), builds the engine, resolves when it can answer. */
export declare function load(options: LoadOptions): Promise<Realm>;
