// A page's use of realm-qa, type-checked by `tsc -p tests/types` against the package's own
// declarations (resolved through package.json's exports, as a user's project resolves them).
import { load, RealmError, MODEL_FILES, BUNDLE_MEMBERS, type AskResult, type LoadProgress } from "realm-qa";
import type { RealmQaElement } from "realm-qa/element";

async function main(): Promise<void> {
  const controller = new AbortController();
  const realm = await load({
    model: "/realm/model/",
    index: new URL("/realm/index.shard", "https://example.org"),
    passages: "/realm/passages.jsonl",
    cache: "my-cache",
    onProgress: (p: LoadProgress) => console.log(p.file, p.phase, p.loaded, p.total ?? "?"),
    signal: controller.signal,
  });
  const device: "cpu" | "webgpu" = realm.device;
  const result: AskResult = await realm.ask("Who painted the Mona Lisa?", { topK: 3 });
  if (result.answer) {
    const marked: string = result.answer.context.slice(result.answer.start, result.answer.end);
    console.log(marked, result.answer.passageId, result.answer.readerScore, result.seconds.total, device);
  }
  for (const p of result.passages) console.log(p.id, p.title, p.retrieverScore, p.bestSpan ?? "-");
  console.log(MODEL_FILES.length, realm.fromCache, realm.downloaded);
  const bundled = await load({ bundle: "/realm/demo.realm.tar", device: "cpu" });
  console.log(bundled.passageCount, BUNDLE_MEMBERS["index.shard"]);
  realm.abort();
  realm.dispose();
  try {
    await realm.ask("");
  } catch (e) {
    if (e instanceof RealmError && e.code === "question") console.log(e.file);
  }

  const el = document.querySelector("realm-qa") as RealmQaElement;
  el.addEventListener("realm-qa-answer", (e) => console.log(e.detail.answer?.text));
  el.addEventListener("load", (e) => console.log(e.detail.device, e.detail.fromCache, e.detail.downloaded));
  el.addEventListener("progress", (e) => console.log(e.detail.file, e.detail.phase, e.detail.loaded));
  el.addEventListener("error", (e) => console.log(e.detail.error.code, e.detail.error.file));
  const fromServer: "cpu" | "webgpu" | "gpu" = (await el.ask()).device;
  console.log(fromServer);
  await el.ready;
  const answered: AskResult = await el.ask("Who wrote Hamlet?");
  console.log(answered.device, el.state, el.device, el.loadInfo?.fromCache, el.topK);
  el.abort();
  el.dispose();
}

void main;
