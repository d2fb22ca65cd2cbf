//! `realm tag`: the salient spans REALM's pre-training would mask in a corpus (entities and
//! dates, `realm_core::text::salient`, with the corpus's titles as the gazetteer), one JSON
//! line per sentence with `--json`, and a summary: sentences, the share that get a span, spans
//! per kind. For checking the tagger on your own text, and for comparing it with spaCy.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use realm_core::text::salient::{Gazetteer, SpanKind, salient_spans};
use realm_core::text::sentences::sentences;

use crate::embed::read_passages;

#[derive(Args, Clone)]
pub struct TagArgs {
    /// Passages: JSON lines of {"title", "text"}, or a JSON object of Wikipedia summaries.
    #[arg(long, default_value = crate::files::DEMO_CORPUS)]
    pub corpus: PathBuf,
    /// Only the first N passages (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Print every sentence and its spans as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &TagArgs) -> anyhow::Result<()> {
    let all = read_passages(&args.corpus, 0)?;
    let gazetteer = Gazetteer::from_titles(all.iter().map(|p| p.title.as_str()))
        .with_common_words(all.iter().map(|p| p.text.as_str()));
    let passages = if args.limit > 0 {
        &all[..args.limit.min(all.len())]
    } else {
        &all[..]
    };
    let (mut count, mut with_span, mut dates, mut entities) = (0usize, 0usize, 0usize, 0usize);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (id, passage) in passages.iter().enumerate() {
        for (s, e) in sentences(&passage.text) {
            let sentence = &passage.text[s..e];
            let spans = salient_spans(sentence, &gazetteer);
            count += 1;
            with_span += usize::from(!spans.is_empty());
            for span in &spans {
                match span.kind {
                    SpanKind::Date => dates += 1,
                    SpanKind::Entity => entities += 1,
                }
            }
            if args.json {
                let spans: Vec<serde_json::Value> = spans
                    .iter()
                    .map(|x| {
                        serde_json::json!({
                            "start": x.start,
                            "end": x.end,
                            "text": &sentence[x.start..x.end],
                            "kind": match x.kind { SpanKind::Date => "date", SpanKind::Entity => "entity" },
                        })
                    })
                    .collect();
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({"passage": id, "sentence": sentence, "spans": spans}),
                )?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    eprintln!(
        "tag: {} passages, {count} sentences, {:.1}% with a salient span; {entities} entities, {dates} dates ({} titles in the gazetteer)",
        passages.len(),
        100.0 * with_span as f64 / count.max(1) as f64,
        gazetteer.len()
    );
    Ok(())
}
