//! REALM's pre-training queries (section 3.4 and the released code): one sentence of a passage
//! with a span masked, every wordpiece of it `[MASK]`, at most 10 targets, and the query
//! rejected when a mask would fall past the query's length. The span is a salient one (an
//! entity or a date, `text::salient`), or, for the paper's ablation, random wordpieces
//! (BERT's 15%) or a random span of whole words. Also the document uid REALM uses to drop the
//! query's own passage from its candidates, and the check that drops a candidate holding the
//! unmasked sentence verbatim.

use crate::Error;
use crate::rng::SplitMix64;
use crate::text::salient::{Gazetteer, salient_spans};
use crate::text::wordpiece::{Encoded, WordPieceTokenizer};

/// REALM's limit on masked wordpieces per query.
pub const MAX_TARGETS: usize = 10;

/// How a query's masked wordpieces are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    /// One salient span (entity or date) of the sentence.
    SalientSpan,
    /// Each wordpiece with probability 0.15 (BERT's), at least one.
    RandomToken,
    /// A random run of 1-4 whole words.
    RandomSpan,
}

/// A query: `[CLS] sentence [SEP]` with some wordpieces replaced by `[MASK]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedQuery {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// (position in `ids`, the wordpiece id that was there), in order.
    pub targets: Vec<(usize, u32)>,
    /// The unmasked sentence (a candidate holding it verbatim is dropped).
    pub sentence: String,
}

/// The query of `sentence` under `masking`, or `None` when it has nothing to mask within
/// `max_length` wordpieces (no salient span that is at most [`MAX_TARGETS`] wordpieces wide and
/// not cut off by the length; a salient span is drawn among those that fit).
pub fn mask_sentence(
    tokenizer: &WordPieceTokenizer,
    sentence: &str,
    masking: Masking,
    gazetteer: &Gazetteer,
    max_length: usize,
    rng: &mut SplitMix64,
) -> Result<Option<MaskedQuery>, Error> {
    let encoded = tokenizer.encode(sentence, Some(max_length))?;
    let pieces: Vec<usize> = (0..encoded.ids.len())
        .filter(|&i| encoded.special_tokens_mask[i] == 0)
        .collect();
    if pieces.is_empty() {
        return Ok(None);
    }
    let positions: Vec<usize> = match masking {
        Masking::SalientSpan => {
            // One of the spans that fit: within the length, at most MAX_TARGETS wordpieces.
            let fitting: Vec<Vec<usize>> = salient_spans(sentence, gazetteer)
                .iter()
                .filter_map(|span| covering(&encoded, &pieces, span.start, span.end))
                .collect();
            if fitting.is_empty() {
                return Ok(None);
            }
            fitting[(rng.next_u64() % fitting.len() as u64) as usize].clone()
        }
        Masking::RandomToken => {
            let mut picked: Vec<usize> = pieces
                .iter()
                .copied()
                .filter(|_| rng.next_u64() % 100 < 15)
                .collect();
            if picked.is_empty() {
                picked.push(pieces[(rng.next_u64() % pieces.len() as u64) as usize]);
            }
            picked.truncate(MAX_TARGETS);
            picked
        }
        Masking::RandomSpan => {
            // A few draws before giving up on a sentence of very long words.
            let words = word_starts(&encoded, &pieces, sentence);
            let draw = |rng: &mut SplitMix64| {
                let width = 1 + (rng.next_u64() % 4) as usize;
                let first = (rng.next_u64() % words.len() as u64) as usize;
                let last = (first + width).min(words.len());
                let start = words[first];
                let end = words.get(last).copied().unwrap_or(pieces.len());
                pieces[start..end].to_vec()
            };
            match (0..8).map(|_| draw(rng)).find(|p| p.len() <= MAX_TARGETS) {
                Some(picked) => picked,
                None => return Ok(None),
            }
        }
    };
    let mut ids = encoded.ids.clone();
    let targets = positions
        .iter()
        .map(|&p| {
            let original = ids[p];
            ids[p] = tokenizer.mask_id;
            (p, original)
        })
        .collect();
    Ok(Some(MaskedQuery {
        ids,
        type_ids: encoded.type_ids,
        targets,
        sentence: sentence.to_string(),
    }))
}

/// Positions of the wordpieces covering bytes `start..end`, or `None` when truncation cut the
/// span off or it is wider than [`MAX_TARGETS`].
fn covering(encoded: &Encoded, pieces: &[usize], start: usize, end: usize) -> Option<Vec<usize>> {
    let last_kept = encoded.offsets[*pieces.last()?].1;
    if last_kept < end {
        return None;
    }
    let inside: Vec<usize> = pieces
        .iter()
        .copied()
        .filter(|&i| encoded.offsets[i].0 < end && encoded.offsets[i].1 > start)
        .collect();
    (!inside.is_empty() && inside.len() <= MAX_TARGETS).then_some(inside)
}

/// Indices into `pieces` where a word starts (a piece whose byte start follows white space).
fn word_starts(encoded: &Encoded, pieces: &[usize], text: &str) -> Vec<usize> {
    (0..pieces.len())
        .filter(|&k| {
            let start = encoded.offsets[pieces[k]].0;
            k == 0 || text[..start].ends_with(char::is_whitespace)
        })
        .collect()
}

/// REALM's document uid: a hash of the title and the body (FNV-1a, 64 bits), the same on
/// every machine, so the query's own passage can be found among its candidates.
pub fn document_uid(title: &str, body: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in title.bytes().chain([0u8]).chain(body.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Whether a retrieved passage may be a candidate for `query` from the document `query_uid`:
/// not the query's own document, and not holding the unmasked sentence verbatim (the answer
/// would be copied, not retrieved). A sentence of fewer than [`VERBATIM_MIN_WORDS`] words
/// ("Yes.", "See below.") is no sign of a copy: most passages would hold it.
pub fn keeps_candidate(
    query: &MaskedQuery,
    query_uid: u64,
    candidate_uid: u64,
    body: &str,
) -> bool {
    let sentence = query.sentence.trim();
    candidate_uid != query_uid
        && (sentence.split_whitespace().count() < VERBATIM_MIN_WORDS || !body.contains(sentence))
}

/// Words a sentence needs before a passage holding it verbatim counts as its copy.
pub const VERBATIM_MIN_WORDS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPieceTokenizer {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nleonardo\nda\nvinci\npainted\nthe\nmona\nlisa\nin\n1503\n.\nit\nwas\nlong\nago\nflorence\n";
        WordPieceTokenizer::from_vocab(vocab).unwrap()
    }

    fn masked_text(t: &WordPieceTokenizer, q: &MaskedQuery) -> Vec<String> {
        let vocab: Vec<&str> = "[PAD] [UNK] [CLS] [SEP] [MASK] leonardo da vinci painted the mona lisa in 1503 . it was long ago florence"
            .split(' ')
            .collect();
        assert_eq!(t.vocab_size(), vocab.len());
        q.ids
            .iter()
            .map(|&i| vocab[i as usize].to_string())
            .collect()
    }

    #[test]
    fn a_salient_span_is_masked_whole_and_its_pieces_are_the_targets() {
        let t = tokenizer();
        let g = Gazetteer::from_titles(["Mona Lisa", "Leonardo da Vinci"]);
        let sentence = "Leonardo da Vinci painted the Mona Lisa in 1503.";
        let mut seen = std::collections::HashSet::new();
        for seed in 0..40 {
            let mut rng = SplitMix64::new(seed);
            let q = mask_sentence(&t, sentence, Masking::SalientSpan, &g, 64, &mut rng)
                .unwrap()
                .expect("the sentence has salient spans");
            let masked: Vec<String> = q
                .targets
                .iter()
                .map(|&(p, _)| masked_text(&t, &q)[p].clone())
                .collect();
            assert!(masked.iter().all(|m| m == "[MASK]"));
            let original: Vec<u32> = q.targets.iter().map(|&(_, id)| id).collect();
            seen.insert(original);
            assert_eq!(q.ids.len(), q.type_ids.len());
        }
        // Each of the three spans gets picked: "leonardo da vinci", "mona lisa", "1503".
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen.contains(&vec![10, 11])
                && seen.contains(&vec![5, 6, 7])
                && seen.contains(&vec![13])
        );
    }

    #[test]
    fn a_sentence_without_a_span_or_with_it_cut_off_gives_no_query() {
        let t = tokenizer();
        let g = Gazetteer::default();
        let mut rng = SplitMix64::new(1);
        assert_eq!(
            mask_sentence(
                &t,
                "it was long ago.",
                Masking::SalientSpan,
                &g,
                64,
                &mut rng
            )
            .unwrap(),
            None
        );
        // "1503" lies past 6 wordpieces ([CLS] + 4 + [SEP]).
        let late = "it was long ago in 1503.";
        assert_eq!(
            mask_sentence(&t, late, Masking::SalientSpan, &g, 6, &mut rng).unwrap(),
            None
        );
        assert!(
            mask_sentence(&t, late, Masking::SalientSpan, &g, 64, &mut rng)
                .unwrap()
                .is_some()
        );
        // With one span cut off and one that fits, every draw masks the one that fits.
        let both = "It was Florence, long ago in 1503.";
        for _ in 0..20 {
            let q = mask_sentence(&t, both, Masking::SalientSpan, &g, 8, &mut rng)
                .unwrap()
                .expect("Florence fits");
            assert_eq!(q.targets.len(), 1);
            assert_eq!(q.targets[0].0, 3, "[CLS] it was florence");
        }
    }

    #[test]
    fn random_masking_stays_within_the_limits() {
        let t = tokenizer();
        let g = Gazetteer::default();
        let sentence = "it was long ago in florence in 1503 it was long ago in florence.";
        for seed in 0..20 {
            let mut rng = SplitMix64::new(seed);
            for masking in [Masking::RandomToken, Masking::RandomSpan] {
                if let Some(q) = mask_sentence(&t, sentence, masking, &g, 64, &mut rng).unwrap() {
                    assert!(!q.targets.is_empty() && q.targets.len() <= MAX_TARGETS);
                    assert!(q.targets.iter().all(|&(p, _)| q.ids[p] == t.mask_id));
                    assert!(q.targets.iter().all(|&(p, _)| p > 0 && p + 1 < q.ids.len()));
                }
            }
        }
    }

    #[test]
    fn own_documents_and_verbatim_copies_are_not_candidates() {
        let t = tokenizer();
        let g = Gazetteer::from_titles(["Mona Lisa"]);
        let mut rng = SplitMix64::new(3);
        let sentence = "Leonardo da Vinci painted the Mona Lisa in 1503.";
        let q = mask_sentence(&t, sentence, Masking::SalientSpan, &g, 64, &mut rng)
            .unwrap()
            .unwrap();
        let own = document_uid(
            "Mona Lisa",
            "Leonardo da Vinci painted the Mona Lisa in 1503. It hangs in Paris.",
        );
        assert_eq!(
            own,
            document_uid(
                "Mona Lisa",
                "Leonardo da Vinci painted the Mona Lisa in 1503. It hangs in Paris."
            )
        );
        assert_ne!(
            own,
            document_uid(
                "Mona Lis",
                "aLeonardo da Vinci painted the Mona Lisa in 1503. It hangs in Paris."
            )
        );
        let other = document_uid("Leonardo", "He painted it.");
        assert!(!keeps_candidate(&q, own, own, "It hangs in Paris."));
        assert!(!keeps_candidate(
            &q,
            own,
            other,
            &format!("Quote: {sentence} End.")
        ));
        assert!(keeps_candidate(&q, own, other, "He painted the Mona Lisa."));
        // A three-word sentence inside another passage is no copy of it.
        let short = "it was long.";
        let q = mask_sentence(&t, short, Masking::RandomToken, &g, 32, &mut rng)
            .unwrap()
            .unwrap();
        assert!(keeps_candidate(
            &q,
            own,
            other,
            "Look: it was long. In Paris."
        ));
    }
}
