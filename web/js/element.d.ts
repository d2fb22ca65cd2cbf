// Types of realm-qa/element: the <realm-qa> custom element (js/element.js).
import type { AskResult } from "../pkg/realm.js";
import type { LoadProgress, RealmError } from "./index.js";

export interface RealmQaLoadInfo {
  /** "server" for a widget with an `endpoint` (nothing loaded: fromCache false, downloaded 0). */
  device: "cpu" | "webgpu" | "server";
  fromCache: boolean;
  downloaded: number;
  /** How questions are embedded: "fine-tuned" (the model's query.*) or "zero-shot" (the base model); null with an `endpoint`. */
  retriever: "fine-tuned" | "zero-shot" | null;
}

export declare class RealmQaElement extends HTMLElement {
  /** "idle" | "loading" | "ready" | "asking" | "error" (also reflected as the `state` attribute). */
  readonly state: "idle" | "loading" | "ready" | "asking" | "error";
  /** Resolves once the engine is loaded (or the endpoint set). */
  readonly ready: Promise<void>;
  /** Where the encoders run: "cpu", "webgpu", "server" (with `endpoint`), or null before loading. */
  readonly device: "cpu" | "webgpu" | "server" | null;
  /** The last answer, or null. */
  readonly result: AskResult | null;
  /** How the engine loaded, or null. */
  readonly loadInfo: RealmQaLoadInfo | null;
  /** The `endpoint` attribute: a `realm serve` URL to ask instead of loading the engine. */
  readonly endpoint: string | null;
  /** The `top-k` attribute (default 5). */
  readonly topK: number;
  /** Loads the engine; rejects (and shows the error) on failure. */
  load(): Promise<void>;
  /** Answers `question` (default: the input's text) and shows the answer. */
  ask(question?: string): Promise<AskResult>;
  /** Rejects the pending load or question with an AbortError; the widget stays usable (and other widgets' loads and questions go on). */
  abort(): void;
  /** Lets its engine go (as removing the element from the page does): the worker ends and its memory is freed unless another widget of the page shares it (the same files and `device` attribute); the next ask() loads again. */
  dispose(): void;
  addEventListener<K extends keyof RealmQaEventMap>(type: K, listener: (this: RealmQaElement, ev: RealmQaEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof RealmQaEventMap>(type: K, listener: (this: RealmQaElement, ev: RealmQaEventMap[K]) => unknown, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

/** The element's events: `load`, `progress` and `error` carry their `detail` (not the DOM's events of those names). */
export interface RealmQaEventMap {
  loadstart: Event;
  progress: CustomEvent<LoadProgress>;
  load: CustomEvent<RealmQaLoadInfo>;
  error: CustomEvent<{ error: RealmError }>;
  loadend: Event;
  "realm-qa-answer": CustomEvent<AskResult>;
}

declare global {
  interface HTMLElementTagNameMap {
    "realm-qa": RealmQaElement;
  }
  interface HTMLElementEventMap {
    "realm-qa-answer": CustomEvent<AskResult>;
  }
}
