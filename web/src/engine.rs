//! The question-answering engine in wasm: `realm_core::qa::engine::QaEngine` built from the
//! bytes of the seven files the page fetched (base model config, tokenizer and weights, the
//! trained reader's card and weights, the index shard, the passages) and, where the model has
//! one, the fine-tuned question embedder's two (`query.json`, `query.safetensors`), answering
//! with the same code `realm ask` runs. Offsets are translated from UTF-8 bytes to JavaScript string indices
//! (UTF-16 code units); every error names the file it came from.

use std::rc::Rc;

use burn::tensor::Device;
use realm_core::index::shard::Shard;
use realm_core::linalg::Precision;
use realm_core::qa::engine::{IndexedCorpus, QaEngine, check_index_width};
use realm_core::qa::models::{
    BaseModel, QueryCard, ReaderCard, load_question_embedder, load_reader,
};
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
  /** The reader's logit of this span, and its passage's retriever score. */
  readerScore: number;
  retrieverScore: number;
  /** The answer's log-score: REALM's marginal over every passage's spans with the same text. */
  score: number;
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
  /** Where the encoders ran ("gpu": a `realm serve` endpoint reading on a native GPU). */
  device: "cpu" | "webgpu" | "gpu";
}
"#;

/// The engine, in wasm memory until `free()`.
#[wasm_bindgen]
pub struct Engine {
    inner: Rc<QaEngine>,
    device: &'static str,
    fine_tuned: bool,
}

fn named<E: std::fmt::Display>(file: &str) -> impl Fn(E) -> JsError {
    move |e| JsError::new(&format!("{file}: {e}"))
}

/// [`named`] for a step that reads `file` and may also find fault with another: a tokenizer
/// whose ids the model's tables do not hold is `tokenizer.json`'s fault, and a message that
/// already names `reader.json` (the card's sizes) stays as it is.
fn blamed(file: &'static str) -> impl Fn(realm_core::Error) -> JsError {
    move |e| match e {
        realm_core::Error::Tokenizer(_) => named("tokenizer.json")(e),
        e if e.to_string().starts_with("reader.json") => JsError::new(&e.to_string()),
        e => named(file)(e),
    }
}

/// The files' bytes, in the order the constructors take them.
struct Files<'a> {
    config: &'a [u8],
    tokenizer: &'a [u8],
    model: &'a [u8],
    reader_card: &'a [u8],
    reader: &'a [u8],
    index: &'a [u8],
    passages: &'a [u8],
    /// `query.json` and `query.safetensors`, both or neither.
    query_card: Option<&'a [u8]>,
    query: Option<&'a [u8]>,
}

impl Files<'_> {
    /// The engine on `device` (frozen f32 encoders on the CPU; burn's module path elsewhere).
    fn build(&self, device: Device, name: &'static str) -> Result<Engine, JsError> {
        let tokenizer = WordPieceTokenizer::from_tokenizer_json(self.tokenizer)
            .map_err(named("tokenizer.json"))?;
        let base = BaseModel::from_bytes(self.config, self.model, tokenizer)
            .map_err(blamed("config.json and model.safetensors"))?;
        let card = ReaderCard::from_json(self.reader_card).map_err(blamed("reader.json"))?;
        // It also checks the card's sizes and the tokenizer's pairs: `blamed` names those files.
        let mut reader = load_reader(&base, &card, self.reader, &device)
            .map_err(blamed("reader.safetensors"))?;
        let mut embedder = match (self.query_card, self.query) {
            (Some(card), Some(query)) => {
                let card = QueryCard::from_json(card).map_err(named("query.json"))?;
                load_question_embedder(&base, &card, query, &device)
                    .map_err(named("query.safetensors"))?
            }
            (None, None) => base
                .sentence_embedder(&device)
                .map_err(named("model.safetensors"))?,
            (Some(_), None) => {
                return Err(JsError::new(
                    "query.safetensors: missing (query.json is given: the question embedder needs both)",
                ));
            }
            (None, Some(_)) => {
                return Err(JsError::new(
                    "query.json: missing (query.safetensors is given: the question embedder needs both)",
                ));
            }
        };
        let eps = base.config.layer_norm_eps;
        reader.freeze(eps, Precision::F32);
        embedder.bert.freeze(eps, Precision::F32);
        let shard = Shard::from_bytes(self.index).map_err(named("index"))?;
        let corpus = IndexedCorpus::from_shard(
            parse_corpus(self.passages).map_err(named("passages"))?,
            shard,
        )
        .map_err(named("index and passages"))?;
        check_index_width(corpus.index.as_ref(), embedder.dim()).map_err(named("index"))?;
        Ok(Engine {
            inner: Rc::new(QaEngine {
                embedder,
                embed_device: device.clone(),
                reader,
                reader_device: device,
                tokenizer: base.tokenizer,
                corpus,
                max_length: card.max_length,
                answer_rule: card.answer_rule(),
            }),
            device: name,
            fine_tuned: self.query.is_some(),
        })
    }
}

#[wasm_bindgen]
impl Engine {
    /// Builds the engine on the CPU from the files' bytes. Each argument is named as in a model
    /// directory: `config.json`, `tokenizer.json`, `model.safetensors` (the base BERT),
    /// `reader.json`, `reader.safetensors` (the trained span reader), the index shard
    /// (`realm index`) and the passages (JSON lines, or the Wikipedia summaries object); then,
    /// optional, `query.json` and `query.safetensors` (a fine-tuned question embedder: both
    /// or neither; without them questions are embedded with the base model).
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
        query_card: Option<Vec<u8>>,
        query: Option<Vec<u8>>,
    ) -> Result<Engine, JsError> {
        Files {
            config,
            tokenizer,
            model,
            reader_card,
            reader,
            index,
            passages,
            query_card: query_card.as_deref(),
            query: query.as_deref(),
        }
        .build(realm_core::device::cpu_device(), "cpu")
    }

    /// The same engine with its encoders on WebGPU (burn's wgpu backend), in the package's
    /// WebGPU build only. Rejects where the browser offers no adapter.
    #[cfg(feature = "webgpu")]
    #[wasm_bindgen(js_name = newWebGpu)]
    #[allow(clippy::too_many_arguments)]
    pub async fn new_webgpu(
        config: Vec<u8>,
        tokenizer: Vec<u8>,
        model: Vec<u8>,
        reader_card: Vec<u8>,
        reader: Vec<u8>,
        index: Vec<u8>,
        passages: Vec<u8>,
        query_card: Option<Vec<u8>>,
        query: Option<Vec<u8>>,
    ) -> Result<Engine, JsError> {
        let device = Device::wgpu_options()
            .init_async()
            .await
            .map_err(|e| JsError::new(&format!("webgpu: no WebGPU device: {e}")))?;
        Files {
            config: &config,
            tokenizer: &tokenizer,
            model: &model,
            reader_card: &reader_card,
            reader: &reader,
            index: &index,
            passages: &passages,
            query_card: query_card.as_deref(),
            query: query.as_deref(),
        }
        .build(device, "webgpu")
    }

    /// Passages in the corpus.
    #[wasm_bindgen(getter, js_name = passageCount)]
    pub fn passage_count(&self) -> usize {
        self.inner.corpus.passages.len()
    }

    /// Where the encoders run: "cpu" or "webgpu".
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.to_string()
    }

    /// How questions are embedded: "fine-tuned" (`query.safetensors` over the base model) or
    /// "zero-shot" (the base model's sentence embedder), as `realm eval` names them.
    #[wasm_bindgen(getter, unchecked_return_type = "\"fine-tuned\" | \"zero-shot\"")]
    pub fn retriever(&self) -> String {
        match self.fine_tuned {
            true => "fine-tuned",
            false => "zero-shot",
        }
        .to_string()
    }

    /// Answers `question` from the top `top_k` passages (CPU engines only: synchronous).
    #[wasm_bindgen(unchecked_return_type = "AskResult")]
    pub fn ask(&self, question: &str, top_k: usize) -> Result<JsValue, JsError> {
        if self.device != "cpu" {
            // Its tensors come back from the GPU asynchronously: a synchronous read would panic.
            return Err(JsError::new(
                "ask: this engine runs on WebGPU, whose results come back asynchronously: call askAsync",
            ));
        }
        let report = self.inner.ask(question, top_k)?;
        to_js(&PageReport::new(
            &report,
            &self.inner.corpus.passages,
            self.device,
        ))
    }

    /// Answers `question` with every read-back awaited: on any engine, WebGPU's included.
    #[wasm_bindgen(js_name = askAsync, unchecked_return_type = "Promise<AskResult>")]
    pub fn ask_async(&self, question: String, top_k: usize) -> js_sys::Promise {
        let (inner, device) = (self.inner.clone(), self.device);
        wasm_bindgen_futures::future_to_promise(async move {
            let report = inner
                .ask_async(&question, top_k)
                .await
                .map_err(|e| JsValue::from(JsError::new(&e.to_string())))?;
            to_js(&PageReport::new(&report, &inner.corpus.passages, device)).map_err(JsValue::from)
        })
    }
}

fn to_js(report: &PageReport) -> Result<JsValue, JsError> {
    Ok(report.serialize(&serde_wasm_bindgen::Serializer::json_compatible())?)
}
