//! REALM in the browser: JavaScript bindings that translate JS values into `realm-core` and
//! `realm-shaders` calls. Every export returns `Result<_, JsError>`; nothing panics here.
//!
//! The walking skeleton's exports embed the built-in passages with the seeded embedder on
//! burn's CPU backend, then search them with the CPU reference or the WGSL kernel on WebGPU.
//! `ShardIndex` reads and searches index shard files (`shard.rs`); `Engine` answers
//! questions with the trained reader over an index and its passages (`engine.rs`).

mod engine;
mod shard;

pub use engine::Engine;

use std::cell::RefCell;
use std::rc::Rc;

use realm_core::index::reference::{Hit, top_k_reference};
use realm_core::skeleton::{PASSAGES, QUESTIONS, SkeletonRetriever};
use realm_shaders::{GpuContext, TopKKernel};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** One retrieved passage: its index in `passages()` and its relevance score f(x, z). */
export interface Hit { id: number; score: number }
/** The passages retrieved for one question, best first. */
export interface DemoAnswer { question: string; hits: Hit[] }
/** A search over the skeleton's passages, and where it ran. */
export interface DemoResult { backend: "cpu" | "webgpu"; adapter: string | null; questions: DemoAnswer[] }
"#;

#[derive(Serialize)]
struct DemoAnswer {
    question: String,
    hits: Vec<Hit>,
}

#[derive(Serialize)]
struct DemoResult {
    backend: &'static str,
    adapter: Option<String>,
    questions: Vec<DemoAnswer>,
}

/// The embedder and the passage embeddings, built on first use.
struct Corpus {
    retriever: SkeletonRetriever,
    documents: Vec<f32>,
}

struct Gpu {
    ctx: GpuContext,
    kernel: TopKKernel,
}

thread_local! {
    static CORPUS: RefCell<Option<Rc<Corpus>>> = const { RefCell::new(None) };
    static GPU: RefCell<Option<Rc<Gpu>>> = const { RefCell::new(None) };
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn corpus() -> Result<Rc<Corpus>, JsError> {
    if let Some(corpus) = CORPUS.with_borrow(Clone::clone) {
        return Ok(corpus);
    }
    let retriever = SkeletonRetriever::new(realm_core::device::cpu_device())?;
    let documents = retriever.embed(PASSAGES)?;
    let corpus = Rc::new(Corpus {
        retriever,
        documents,
    });
    CORPUS.with_borrow_mut(|slot| *slot = Some(corpus.clone()));
    Ok(corpus)
}

async fn gpu() -> Result<Rc<Gpu>, JsError> {
    if let Some(gpu) = GPU.with_borrow(Clone::clone) {
        return Ok(gpu);
    }
    let ctx = GpuContext::new().await?;
    let kernel = TopKKernel::new(&ctx).await?;
    let gpu = Rc::new(Gpu { ctx, kernel });
    GPU.with_borrow_mut(|slot| *slot = Some(gpu.clone()));
    Ok(gpu)
}

/// The skeleton's passages; hit ids index this list.
#[wasm_bindgen]
pub fn passages() -> Vec<String> {
    PASSAGES.iter().map(|p| p.to_string()).collect()
}

/// The skeleton's built-in questions.
#[wasm_bindgen]
pub fn questions() -> Vec<String> {
    QUESTIONS.iter().map(|q| q.to_string()).collect()
}

fn answers(questions: Vec<String>, hits: Vec<Vec<Hit>>) -> Vec<DemoAnswer> {
    questions
        .into_iter()
        .zip(hits)
        .map(|(question, hits)| DemoAnswer { question, hits })
        .collect()
}

/// The most questions one demo search embeds (in one batch: its attention grows with the count).
const MAX_DEMO_QUESTIONS: usize = 1024;

fn check_question_count(questions: &[String]) -> Result<(), JsError> {
    if questions.len() > MAX_DEMO_QUESTIONS {
        return Err(JsError::new(&format!(
            "{} questions: a demo search takes at most {MAX_DEMO_QUESTIONS}",
            questions.len()
        )));
    }
    Ok(())
}

fn to_js(result: &DemoResult) -> Result<JsValue, JsError> {
    Ok(result.serialize(&serde_wasm_bindgen::Serializer::json_compatible())?)
}

/// Retrieves the top `k` passages for each question with the exact CPU search.
#[wasm_bindgen(js_name = demoSearchCpu, unchecked_return_type = "DemoResult")]
pub fn demo_search_cpu(questions: Vec<String>, k: usize) -> Result<JsValue, JsError> {
    check_question_count(&questions)?;
    let corpus = corpus()?;
    let texts: Vec<&str> = questions.iter().map(String::as_str).collect();
    let queries = corpus.retriever.embed(&texts)?;
    let hits = top_k_reference(&queries, &corpus.documents, corpus.retriever.dim, k)?;
    to_js(&DemoResult {
        backend: "cpu",
        adapter: None,
        questions: answers(questions, hits),
    })
}

/// Retrieves the top `k` passages (k <= 32) for each question with the WGSL kernel on
/// WebGPU. Rejects when the browser offers no WebGPU adapter: check `navigator.gpu` and
/// `requestAdapter()` first, and fall back to `demoSearchCpu`.
// wasm-bindgen wraps an async fn's return type in the Promise itself.
#[wasm_bindgen(js_name = demoSearchWebGpu, unchecked_return_type = "DemoResult")]
pub async fn demo_search_webgpu(questions: Vec<String>, k: usize) -> Result<JsValue, JsError> {
    check_question_count(&questions)?;
    let corpus = corpus()?;
    let texts: Vec<&str> = questions.iter().map(String::as_str).collect();
    let queries = corpus.retriever.embed(&texts)?;
    let gpu = gpu().await?;
    let hits = gpu
        .kernel
        .search(
            &gpu.ctx,
            &queries,
            &corpus.documents,
            corpus.retriever.dim,
            k,
        )
        .await?;
    to_js(&DemoResult {
        backend: "webgpu",
        adapter: Some(gpu.ctx.describe()),
        questions: answers(questions, hits),
    })
}
