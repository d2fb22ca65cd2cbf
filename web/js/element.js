// <realm-qa>: a question-answering widget. It loads the engine (in a Web Worker) from its
// `model`, `index` and `passages` attributes (or one `bundle`), or asks a `realm serve` at `endpoint`, and shows
// the answer marked in its passage. Styled through ::part() and CSS custom properties.
import { load, RealmError } from "./index.js";
import { loadFraction } from "./loader.js";

// The engines of this page's widgets, by what they load: widgets with the same files and the
// same `device` attribute share one download and one worker (an engine holds over 100 MB).
const engines = new Map();

/**
 * Joins the load of `options` (starting it where no widget has): resolves to { realm, release }
 * once the engine is built; `release()` gives the widget's share back, and the last share's
 * release ends the load or the worker. `signal` withdraws this widget alone (an AbortError);
 * `onProgress` hears the load's progress, the files already under way first.
 */
function shareEngine(options, onProgress, signal) {
  const key = JSON.stringify(["model", "index", "passages", "bundle", "device", "base"].map((k) => options[k] ?? null));
  let entry = engines.get(key);
  if (!entry) {
    const controller = new AbortController();
    const shared = { users: 0, listeners: new Set(), latest: new Map(), controller, realm: null };
    shared.promise = load({
      ...options,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.file) shared.latest.set(p.file, p);
        for (const listener of shared.listeners) listener(p);
      },
    }).then((realm) => {
      if (shared.users === 0) {
        realm.dispose(); // every widget withdrew while it was being built
        throw new RealmError("aborted", "aborted");
      }
      shared.realm = realm;
      return realm;
    }, (error) => {
      if (engines.get(key) === shared) engines.delete(key);
      throw error;
    });
    engines.set(key, shared);
    entry = shared;
  }
  const shared = entry;
  shared.users += 1;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    shared.users -= 1;
    if (shared.users > 0) return;
    if (engines.get(key) === shared) engines.delete(key);
    shared.controller.abort();
    shared.realm?.dispose();
  };
  for (const p of shared.latest.values()) onProgress(p);
  shared.listeners.add(onProgress);
  return new Promise((resolve, reject) => {
    const leave = () => {
      shared.listeners.delete(onProgress);
      signal.removeEventListener("abort", withdraw);
    };
    const withdraw = () => {
      leave();
      release();
      reject(new RealmError("aborted", "aborted"));
    };
    if (signal.aborted) return withdraw();
    signal.addEventListener("abort", withdraw, { once: true });
    shared.promise.then((realm) => {
      leave();
      resolve({ realm, release });
    }, (error) => {
      leave();
      release();
      reject(error);
    });
  });
}

const template = document.createElement("template");
template.innerHTML = `
<style>
  :host { display: block; font: var(--realm-qa-font, 15px/1.45 system-ui, sans-serif); color: var(--realm-qa-color, inherit);
          border: var(--realm-qa-border, 1px solid #ccd); border-radius: var(--realm-qa-radius, 8px); padding: var(--realm-qa-padding, 1rem); }
  :host([hidden]) { display: none; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
  label { flex-basis: 100%; font-weight: 600; }
  input { flex: 1; min-width: 10rem; font: inherit; padding: .4rem .6rem; }
  button { font: inherit; padding: .4rem .9rem; background: var(--realm-qa-accent, #2456c8); color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
  button[aria-disabled="true"] { opacity: .6; cursor: default; }
  [part~="progress"] { height: .4rem; background: #e6e8ef; border-radius: 2px; margin-top: .6rem; overflow: hidden; }
  [part~="progress-bar"] { height: 100%; width: 0; background: var(--realm-qa-accent, #2456c8); transition: width .2s; }
  [part~="progress-bar"][data-indeterminate] { width: 30%; animation: realm-qa-slide 1.4s linear infinite; }
  @keyframes realm-qa-slide { from { transform: translateX(-100%); } to { transform: translateX(340%); } }
  @media (prefers-reduced-motion: reduce) { [part~="progress-bar"][data-indeterminate] { animation: none; width: 100%; opacity: .5; } }
  [part~="error"]:empty, [part~="progress"][hidden] { display: none; }
  [part~="error"] { color: var(--realm-qa-error-color, #a40000); margin-top: .6rem; }
  [part~="answer-text"] { font-size: 1.25em; font-weight: 700; margin: .6rem 0 .2rem; }
  [part~="source"] { color: #555; font-size: .9em; }
  [part~="passage"] { margin: .5rem 0 0; padding-left: .8rem; border-left: 3px solid #ccd; }
  .announce { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
  mark { background: var(--realm-qa-mark, #ffe58a); color: inherit; }
</style>
<form part="form" role="search">
  <label part="label" for="question"><slot name="label">Ask a question</slot></label>
  <input part="input" id="question" name="question" type="search" autocomplete="off" enterkeyhint="search">
  <button part="button" type="submit">Ask</button>
</form>
<div part="progress" role="progressbar" aria-label="Loading the model" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0" hidden><div part="progress-bar"></div></div>
<div part="error" role="alert"></div>
<div part="answer"><slot name="empty"></slot></div>
<div class="announce" role="status" aria-live="polite" aria-atomic="true"></div>
`;

/**
 * A question-answering widget over REALM's engine: a search form, a progress bar while the
 * files load, the answer marked in its passage, errors as alerts.
 *
 * @summary Ask a question; the answer is read from the passages in the page.
 * @tag realm-qa
 *
 * @attr {string} model - URL of the model directory (config.json, tokenizer.json, model.safetensors, reader.json, reader.safetensors; query.json and query.safetensors where it has a fine-tuned question embedder).
 * @attr {string} index - URL of the index shard (`realm index`).
 * @attr {string} passages - URL of the passages (JSON lines), in the index's order.
 * @attr {string} bundle - URL of one file holding the model, index and passages (`realm bundle`), instead of the three above.
 * @attr {string} endpoint - URL of a `realm serve`: ask it instead of loading the engine in the page.
 * @attr {"auto"|"webgpu"|"cpu"} device - Where the encoders run: auto (default) is WebGPU on a hardware adapter, else the CPU (also where WebGPU fails to start); webgpu without an adapter is an error.
 * @attr {number} top-k - Passages the reader reads (1 to 100, default 5).
 * @attr {"eager"|"lazy"} loading - eager (default) loads on connection; lazy on the input's first focus or the first question.
 * @attr {string} state - Reflects the `state` property (read only).
 *
 * @fires loadstart - The files start loading.
 * @fires progress - A file's progress: detail { file, phase, loaded, total }.
 * @fires load - The engine is ready: detail { device, fromCache, downloaded, retriever }.
 * @fires error - Loading or answering failed: detail { error } (a RealmError with code and file).
 * @fires loadend - Loading ended, in success or failure.
 * @fires realm-qa-answer - A question was answered: detail is the AskResult (bubbles, composed).
 *
 * @slot label - The search field's label (default "Ask a question").
 * @slot empty - Shown in the answer area before the first answer.
 *
 * @csspart form - The search form.
 * @csspart label - The field's label.
 * @csspart input - The question field.
 * @csspart button - The Ask button.
 * @csspart progress - The loading progress bar (role=progressbar, aria-valuenow; none, and a moving bar, while no file's size is known).
 * @csspart progress-bar - The bar's filled part.
 * @csspart error - The alert area (role=alert).
 * @csspart answer - The answer, its source and its passage (a screen reader hears the answer and its source from a hidden live region, not the whole passage again).
 * @csspart answer-text - The answer span.
 * @csspart source - The passage's title and id.
 * @csspart passage - The passage, the answer marked.
 * @csspart mark - The answer inside its passage.
 *
 * @cssprop --realm-qa-font - The widget's font.
 * @cssprop --realm-qa-color - Text colour.
 * @cssprop --realm-qa-accent - Button and progress colour.
 * @cssprop --realm-qa-border - The host's border.
 * @cssprop --realm-qa-radius - The host's corner radius.
 * @cssprop --realm-qa-padding - The host's padding.
 * @cssprop --realm-qa-mark - The answer's highlight.
 * @cssprop --realm-qa-error-color - The alert's text colour.
 */
export class RealmQaElement extends HTMLElement {
  static observedAttributes = ["model", "index", "passages", "bundle", "endpoint", "device", "top-k", "loading"];

  #realm = null;
  #release = null;
  #loading = null;
  #state = "idle";
  #result = null;
  #asking = null;
  #loadController = null;
  #reloadQueued = false;
  #loadInfo = null;
  #readyResolve;
  #ready = new Promise((r) => (this.#readyResolve = r));

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.append(template.content.cloneNode(true));
    this.$ = (part) => root.querySelector(`[part~="${part}"]`);
    this.$("form").addEventListener("submit", (e) => {
      e.preventDefault();
      // Busy: the button says so (aria-disabled, not disabled, which would take the focus
      // from a keyboard user who pressed it), and a press does nothing.
      if (this.#state === "loading" || this.#state === "asking") return;
      this.ask().catch(() => {});
    });
    // Escape stops the question in flight; a load goes on (Escape also clears a search field,
    // and a lazy load starts on the field's focus).
    this.$("input").addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.#state === "asking") this.abort();
    });
    this.$("input").addEventListener("focus", () => {
      if (this.getAttribute("loading") === "lazy") this.load().catch(() => {});
    }, { once: false });
  }

  connectedCallback() {
    // Reflected from the first connection (a lazy widget waits "idle" until its first focus).
    if (!this.hasAttribute("state")) this.setAttribute("state", this.#state);
    if (this.getAttribute("loading") !== "lazy" || this.endpoint) queueMicrotask(() => this.isConnected && this.load().catch(() => {}));
  }

  disconnectedCallback() {
    // Removed, not moved (a move reconnects it before the microtask runs): the load or
    // question in flight stops, and the worker and its engine go with the element.
    queueMicrotask(() => {
      if (this.isConnected) return;
      this.abort();
      this.dispose();
    });
  }

  attributeChangedCallback(name, old, value) {
    if (old === value || !["model", "index", "passages", "bundle"].includes(name)) return;
    if (!this.#realm && !this.#loading) return;
    // Once for all the changes of one task (a page switching to `bundle` removes three
    // attributes and sets one): the engine, or the load in flight, gives way to a load of
    // what the attributes say then.
    if (this.#reloadQueued) return;
    this.#reloadQueued = true;
    queueMicrotask(async () => {
      this.#reloadQueued = false;
      this.#loadController?.abort();
      await this.#loading?.catch(() => {});
      this.dispose();
      if (this.isConnected && this.getAttribute("loading") !== "lazy") this.load().catch(() => {});
    });
  }

  /** "idle", "loading", "ready", "asking" or "error". */
  get state() { return this.#state; }
  /** Resolves once the engine is loaded (or the endpoint set). */
  get ready() { return this.#ready; }
  /** Where the encoders run: "cpu", "webgpu", "server", or null before loading. */
  get device() { return this.endpoint ? "server" : this.#realm?.device ?? null; }
  /** How the engine loaded: { device, fromCache, downloaded (bytes), retriever ("fine-tuned", "zero-shot", or null with an endpoint) }, or null. */
  get loadInfo() { return this.#loadInfo; }
  /** The last answer (the AskResult), or null. */
  get result() { return this.#result; }
  /** The `endpoint` attribute: a `realm serve` URL the widget asks instead of loading the engine. */
  get endpoint() { return this.getAttribute("endpoint"); }
  /** The `top-k` attribute as a number (default 5). */
  get topK() {
    const k = Number(this.getAttribute("top-k") ?? 5);
    return Number.isInteger(k) && k > 0 ? k : 5;
  }

  #setState(state) {
    this.#state = state;
    this.setAttribute("state", state);
    this.$("button").setAttribute("aria-disabled", String(state === "loading" || state === "asking"));
  }

  #showError(error) {
    this.$("error").textContent = error.message;
    this.dispatchEvent(new CustomEvent("error", { detail: { error } }));
  }

  /** The loading bar at `fraction` (0 to 1), or indeterminate with null (no size known yet). */
  #progress(fraction) {
    const bar = this.$("progress");
    const filled = this.$("progress-bar");
    if (fraction === null) {
      bar.hidden = false;
      bar.removeAttribute("aria-valuenow");
      filled.setAttribute("data-indeterminate", "");
      filled.style.width = "";
      return;
    }
    const value = Math.round(fraction * 100);
    bar.hidden = fraction >= 1;
    bar.setAttribute("aria-valuenow", String(value));
    filled.removeAttribute("data-indeterminate");
    filled.style.width = `${value}%`;
  }

  /** Loads the engine; resolves when it can answer. Rejects (and shows the error) on failure. */
  load() {
    if (this.endpoint) {
      // Nothing to load, but the same events as a load, so a page that waits for `load` works
      // with either kind of widget.
      if (this.#state === "idle" || this.#state === "error") {
        this.dispatchEvent(new Event("loadstart"));
        this.#setState("ready");
        this.#loadInfo = { device: "server", fromCache: false, downloaded: 0, retriever: null };
        this.#readyResolve();
        this.dispatchEvent(new CustomEvent("load", { detail: this.#loadInfo }));
        this.dispatchEvent(new Event("loadend"));
      }
      return Promise.resolve();
    }
    if (this.#realm) return Promise.resolve();
    if (this.#loading) return this.#loading;
    const device = this.getAttribute("device") ?? "auto";
    this.$("error").textContent = "";
    this.#setState("loading");
    this.$("progress").setAttribute("aria-label", "Loading the model");
    this.dispatchEvent(new Event("loadstart"));
    const files = new Map();
    let shown = 0; // the bar never moves back (a file heard of later adds to the total)
    this.#progress(0);
    this.#loadController = new AbortController();
    const signal = this.#loadController.signal;
    this.#loading = (async () => {
      if (!["auto", "cpu", "webgpu"].includes(device)) throw new RealmError("options", `device="${device}": use auto, webgpu or cpu`);
      const options = {
        model: this.getAttribute("model"),
        index: this.getAttribute("index"),
        passages: this.getAttribute("passages"),
        bundle: this.getAttribute("bundle"),
        base: this.ownerDocument.baseURI,
        device,
      };
      return shareEngine(options, (p) => {
        if (p.file) {
          files.set(p.file, { loaded: p.loaded, total: p.total || null });
          const fraction = loadFraction(files);
          if (fraction === null) {
            this.#progress(null); // sizes unknown: indeterminate
          } else {
            shown = Math.max(shown, fraction);
            this.#progress(shown);
          }
        }
        this.dispatchEvent(new CustomEvent("progress", { detail: p }));
      }, signal);
    })().then(({ realm, release }) => {
      this.#realm = realm;
      this.#release = release;
      this.#progress(1);
      this.#setState("ready");
      this.#readyResolve();
      this.#loadInfo = { device: realm.device, fromCache: realm.fromCache, downloaded: realm.downloaded, retriever: realm.retriever };
      this.dispatchEvent(new CustomEvent("load", { detail: this.#loadInfo }));
    }, (error) => {
      this.#progress(1);
      // A load stopped (abort(), a removal, new attributes) leaves the widget as before it.
      this.#setState(error.code === "aborted" ? "idle" : "error");
      if (error.code !== "aborted") this.#showError(error);
      throw error;
    }).finally(() => {
      this.#loading = null;
      this.dispatchEvent(new Event("loadend"));
    });
    return this.#loading;
  }

  /** Answers `question` (default: the input's text) and shows it; resolves to the AskResult. */
  async ask(question) {
    const q = question ?? this.$("input").value;
    if (question !== undefined) this.$("input").value = question;
    this.$("error").textContent = "";
    try {
      if (typeof q !== "string" || q.trim() === "") throw new RealmError("question", "Type a question first.");
      await this.load();
      this.#setState("asking");
      const controller = new AbortController();
      this.#asking = controller;
      const result = this.endpoint ? await this.#askServer(q, controller.signal) : await this.#realm.ask(q, { topK: this.topK, signal: controller.signal });
      this.#result = result;
      this.#render(result);
      this.#setState("ready");
      this.dispatchEvent(new CustomEvent("realm-qa-answer", { detail: result, bubbles: true, composed: true }));
      return result;
    } catch (error) {
      this.#setState(this.#realm || this.endpoint ? "ready" : error.code === "aborted" ? "idle" : "error");
      if (error.code !== "aborted") this.#showError(error);
      throw error;
    } finally {
      this.#asking = null;
    }
  }

  async #askServer(question, signal) {
    let response;
    const base = new URL(this.endpoint.endsWith("/") ? this.endpoint : this.endpoint + "/", this.ownerDocument.baseURI);
    try {
      response = await fetch(new URL("ask", base).href, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ question, top_k: this.topK }), signal,
      });
    } catch (e) {
      if (signal.aborted) throw new RealmError("aborted", "aborted");
      // A server of another origin that refused this page's preflight looks like no server at all.
      const page = new URL(this.ownerDocument.URL).origin;
      const hint = base.origin === page ? "" : ` (a server of another origin answers this page only when started with --allow-origin ${page})`;
      throw new RealmError("fetch", `cannot reach ${this.endpoint}: ${e.message}${hint}`);
    }
    const body = await response.json().catch(() => null);
    if (signal.aborted) throw new RealmError("aborted", "aborted");
    if (!response.ok) throw new RealmError(response.status < 500 ? "question" : "engine", body?.error ?? `the server answered HTTP ${response.status}`);
    if (body === null) throw new RealmError("engine", `${this.endpoint} answered with something other than JSON`);
    return body;
  }

  #render(result) {
    const box = this.$("answer");
    box.replaceChildren();
    const announce = this.shadowRoot.querySelector(".announce");
    const a = result.answer;
    if (!a) {
      const p = document.createElement("p");
      p.textContent = "No answer: the retrieved passages hold no readable span.";
      box.append(p);
      announce.textContent = p.textContent;
      return;
    }
    announce.textContent = `${a.text}, from “${a.title}”`;
    const text = document.createElement("p");
    text.setAttribute("part", "answer-text");
    text.textContent = a.text;
    const source = document.createElement("p");
    source.setAttribute("part", "source");
    source.textContent = `from “${a.title}” (passage ${a.passageId}), reader score ${a.readerScore.toFixed(2)}`;
    const passage = document.createElement("blockquote");
    passage.setAttribute("part", "passage");
    const mark = document.createElement("mark");
    mark.setAttribute("part", "mark");
    mark.textContent = a.context.slice(a.start, a.end);
    passage.append(a.context.slice(0, a.start), mark, a.context.slice(a.end));
    box.append(text, source, passage);
  }

  /** Rejects the pending load or question with an AbortError; the widget stays usable (and other widgets' loads and questions go on). */
  abort() {
    this.#asking?.abort();
    this.#loadController?.abort();
  }

  /** Lets its engine go (as removing the element from the page does): the worker ends and its memory is freed unless another widget of the page shares it (the same files and `device` attribute); the next ask() loads again. */
  dispose() {
    this.#release?.();
    this.#release = null;
    this.#realm = null;
    this.#setState("idle");
    this.#ready = new Promise((r) => (this.#readyResolve = r));
  }
}

if (!customElements.get("realm-qa")) customElements.define("realm-qa", RealmQaElement);
