// realm-qa in Node: the same API, in this thread, the wasm read from the package's folder on
// disk, and local paths or file: URLs read from disk (Node's fetch reads only http(s)).
import { readFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { load as loadAny, RealmError } from "./index.js";
import { MODEL_FILES, QUERY_FILES } from "./loader.js";

export { Realm, RealmError, MODEL_FILES, QUERY_FILES, BUNDLE_MEMBERS, CACHE_NAME } from "./index.js";

async function readLocal(name, url, optional = false) {
  try {
    return new Uint8Array(await readFile(fileURLToPath(url)));
  } catch (e) {
    if (optional && e.code === "ENOENT") return undefined;
    throw new RealmError("fetch", `${name}: cannot read ${fileURLToPath(url)}: ${e.code ?? e.message}`, name);
  }
}

/** As the browser's `load`, where `model`, `index`, `passages` and `bundle` may also be paths. */
export async function load(options = {}) {
  const base = options.base ?? pathToFileURL(process.cwd() + "/").href;
  const files = { ...(options.files ?? {}) };
  const rest = { ...options, files, worker: false, base, cache: false };
  const local = (u) => u && new URL(String(u), base).protocol === "file:";
  const dir = (u) => (String(u).endsWith("/") ? String(u) : String(u) + "/");
  if (local(options.model)) {
    const at = (name) => new URL(name, new URL(dir(options.model), base));
    for (const name of MODEL_FILES) files[name] ??= await readLocal(name, at(name));
    for (const name of QUERY_FILES) files[name] ??= await readLocal(name, at(name), true);
    delete rest.model;
  }
  for (const key of ["index", "passages", "bundle"]) {
    if (local(options[key])) {
      files[key] ??= await readLocal(key, new URL(String(options[key]), base));
      delete rest[key];
    }
  }
  rest.wasm ??= await readFile(new URL("../pkg/realm_bg.wasm", import.meta.url));
  return loadAny(rest);
}
