//! The question-answering engine in wasm: `realm_core::qa::engine::QaEngine` built from the
//! bytes of the seven files the page fetched (base model config, tokenizer and weights, the
//! trained reader's card and weights, the index shard, the passages), answering with the same
//! code `realm ask` runs. Offsets are translated from UTF-8 bytes to JavaScript string indices
//! (UTF-16 code units); every error names the file it came from.

use realm_core::index::shard::Shard;
use realm_core::linalg::Precision;
use realm_core::qa::engine::{IndexedCorpus, QaEngine};
use realm_core::qa::models::{BaseModel, ReaderCard, load_reader};
use realm_core::qa::report::PageReport;
use realm_core::text::corpus::parse_corpus;
use realm_core::text::wordpiece::WordPieceTokenizer;
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** The answer span, located in its passage. Offsets are JavaScript string indices into `context`. */
export interface Answer {
  text: string;
  passageId: number;
  title: string;
  /** The whole passage the answer was read from. */
  context: string;
  start: number;
  end: number;
  /** The sentence holding the answer, the answer between [[ and ]]. */
  evidence: string;
  readerScore: number;
  retrieverScore: number;
}
/** One retrieved passage, best retriever score first. */
export interface RetrievedPassage {
  id: number;
  title: string;
  retrieverScore: number;
  bestSpan: string | null;
  readerScore: number | null;
}
/** Seconds each part took. */
export interface Timings { embed: number; search: number; read: number; total: number }
/** One question answered. */
export interface AskResult {
  question: string;
  /** Whether the question was cut to the reader's length. */
  truncated: boolean;
  /** Null when no retrieved passage holds a readable span. */
  answer: Answer | null;
  passages: RetrievedPassage[];
  seconds: Timings;
  /** Where the encoders ran. */
  device: "cpu" | "webgpu";
}
"#;

/// The engine, in wasm memory until `free()`.
#[wasm_bindgen]
pub struct Engine {
    inner: QaEngine,
}

fn named<E: std::fmt::Display>(file: &str) -> impl Fn(E) -> JsError {
    move |e| JsError::new(&format!("{file}: {e}"))
}

#[wasm_bindgen]
impl Engine {
    /// Builds the engine from the files' bytes. Each argument is named as in a model
    /// directory: `config.json`, `tokenizer.json`, `model.safetensors` (the base BERT),
    /// `reader.json`, `reader.safetensors` (the trained span reader), the index shard
    /// (`realm index`) and the passages (JSON lines, or the Wikipedia summaries object).
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &[u8],
        tokenizer: &[u8],
        model: &[u8],
        reader_card: &[u8],
        reader: &[u8],
        index: &[u8],
        passages: &[u8],
    ) -> Result<Engine, JsError> {
        let device = realm_core::device::cpu_device();
        let tokenizer =
            WordPieceTokenizer::from_tokenizer_json(tokenizer).map_err(named("tokenizer.json"))?;
        let base = BaseModel::from_bytes(config, model, tokenizer)
            .map_err(named("config.json and model.safetensors"))?;
        let card = ReaderCard::from_json(reader_card).map_err(named("reader.json"))?;
        let mut reader =
            load_reader(&base, &card, reader, &device).map_err(named("reader.safetensors"))?;
        let mut embedder = base
            .sentence_embedder(&device)
            .map_err(named("model.safetensors"))?;
        let eps = base.config.layer_norm_eps;
        reader.bert.freeze(eps, Precision::F32);
        embedder.bert.freeze(eps, Precision::F32);
        let (search, ids) = Shard::from_bytes(index)
            .and_then(Shard::into_index)
            .map_err(named("index"))?;
        if search.dim() != embedder.dim() {
            return Err(JsError::new(&format!(
                "index: its vectors have {} dimensions, the model embeds in {}: build the index with this model (`realm index --model ...`)",
                search.dim(),
                embedder.dim()
            )));
        }
        let corpus = IndexedCorpus::new(
            parse_corpus(passages).map_err(named("passages"))?,
            search,
            ids,
        )
        .map_err(named("index and passages"))?;
        Ok(Engine {
            inner: QaEngine {
                embedder,
                embed_device: device.clone(),
                reader,
                reader_device: device,
                tokenizer: base.tokenizer,
                corpus,
                max_length: card.max_length,
            },
        })
    }

    /// Passages in the corpus.
    #[wasm_bindgen(getter, js_name = passageCount)]
    pub fn passage_count(&self) -> usize {
        self.inner.corpus.passages.len()
    }

    /// Answers `question` from the top `top_k` passages.
    #[wasm_bindgen(unchecked_return_type = "AskResult")]
    pub fn ask(&self, question: &str, top_k: usize) -> Result<JsValue, JsError> {
        let report = self.inner.ask(question, top_k)?;
        let result = PageReport::new(&report, &self.inner.corpus.passages, "cpu");
        Ok(result.serialize(&serde_wasm_bindgen::Serializer::json_compatible())?)
    }
}
