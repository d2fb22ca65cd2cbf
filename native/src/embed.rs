//! The commands' embedding step: a corpus file read into passages, and passages or questions
//! embedded with a sentence model in batches, with a progress bar.

use std::path::Path;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::text::corpus::{Passage, parse_corpus};

use crate::files::model_dir::SentenceModel;

/// The `--batch` and `--max-length` every embedding command takes.
pub fn check_embedding_flags(batch: usize, max_length: usize) -> anyhow::Result<()> {
    if batch == 0 || max_length < 3 {
        bail!("--batch must be at least 1 and --max-length at least 3");
    }
    Ok(())
}

/// The passages of a corpus file: the first `limit` (0: all of them), at least one.
pub fn read_passages(corpus: &Path, limit: usize) -> anyhow::Result<Vec<Passage>> {
    read_passage_window(corpus, 0, limit)
}

/// The passages of a corpus file after its first `skip`: the next `limit` (0: all the rest),
/// at least one.
pub fn read_passage_window(
    corpus: &Path,
    skip: usize,
    limit: usize,
) -> anyhow::Result<Vec<Passage>> {
    window(corpus, read_corpus(corpus)?, skip, limit)
}

/// [`read_passage_window`] with the fingerprint of the whole corpus (what an index of any
/// window of it records: its ids are positions in the file).
pub fn read_fingerprinted_window(
    corpus: &Path,
    skip: usize,
    limit: usize,
) -> anyhow::Result<(Vec<Passage>, u32)> {
    let passages = read_corpus(corpus)?;
    let fingerprint = realm_core::text::corpus::fingerprint(&passages);
    Ok((window(corpus, passages, skip, limit)?, fingerprint))
}

/// Every passage of the corpus file.
fn read_corpus(corpus: &Path) -> anyhow::Result<Vec<Passage>> {
    let bytes = std::fs::read(corpus).with_context(|| {
        format!(
            "reading {} (run `scripts/setup.sh --demo-data`, or pass --corpus FILE)",
            corpus.display()
        )
    })?;
    parse_corpus(&bytes).with_context(|| format!("parsing {}", corpus.display()))
}

/// `passages` (those of the file `corpus`) after the first `skip`: the next `limit` (0: all
/// the rest), at least one.
fn window(
    corpus: &Path,
    mut passages: Vec<Passage>,
    skip: usize,
    limit: usize,
) -> anyhow::Result<Vec<Passage>> {
    if skip > 0 {
        if skip >= passages.len() {
            bail!(
                "{} holds {} passages: --skip {skip} leaves none",
                corpus.display(),
                passages.len()
            );
        }
        passages.drain(..skip);
    }
    if limit > 0 {
        passages.truncate(limit);
    }
    if passages.is_empty() {
        bail!("{} holds no passages", corpus.display());
    }
    Ok(passages)
}

/// Embeds texts as one flat `[texts, dim]` buffer.
pub fn embed(model: &SentenceModel, texts: &[&str], max_length: usize) -> anyhow::Result<Vec<f32>> {
    let positions = model.embedder.bert.max_positions();
    if max_length > positions {
        bail!("--max-length {max_length}: the model reads at most {positions} wordpieces");
    }
    let input = model.tokenizer.encode_batch(texts, max_length)?;
    let device = realm_core::device::cpu_device();
    Ok(model
        .embedder
        .embed(&input, &device)
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 embeddings"))
}

/// Embeds every passage's title and text, `batch` at a time (shortest first, to pad little),
/// as one flat `[passages, dim]` buffer in corpus order; a progress bar on stderr if asked.
pub fn embed_passages(
    model: &SentenceModel,
    passages: &[Passage],
    max_length: usize,
    batch: usize,
    progress: bool,
) -> anyhow::Result<Vec<f32>> {
    let bar = if progress {
        ProgressBar::new(passages.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "embedding passages {bar:40} {pos}/{len} [{elapsed_precise}, {eta} left]",
        )
        .expect("a valid template"),
    );
    let mut documents = Vec::with_capacity(passages.len() * model.embedder.dim());
    // Sorting by length keeps padding low inside each batch; results go back in corpus order.
    let mut order: Vec<usize> = (0..passages.len()).collect();
    order.sort_by_key(|&i| passages[i].text.len());
    let mut rows = vec![Vec::new(); passages.len()];
    for chunk in order.chunks(batch) {
        let texts: Vec<String> = chunk
            .iter()
            .map(|&i| passages[i].embedding_text())
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let values = embed(model, &texts, max_length)?;
        for (&i, row) in chunk.iter().zip(values.chunks_exact(model.embedder.dim())) {
            rows[i] = row.to_vec();
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    rows.into_iter().for_each(|row| documents.extend(row));
    Ok(documents)
}
