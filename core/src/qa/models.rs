//! The models question answering runs, from bytes: a base BERT (config, weights, tokenizer),
//! the sentence embedder that is `Embed_input` (mean pooling over the last layer), and a
//! trained span reader shipped as the tensors that differ from its base (`reader.safetensors`,
//! F16) with its card (`reader.json`). Both sha256 sums are checked: the reader is rebuilt from
//! the base BERT with the card's seed for its fresh span head, then its own tensors go over it.
//! The native CLI reads these bytes from files, the browser from URLs.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::checkpoint::module_io::import_params;
use crate::checkpoint::safetensors_file::{dequantize_int8_matrices, read_safetensors};
use crate::checkpoint::weights::{WeightLoader, WeightMap};
use crate::model::config::{BertConfig, ReaderConfig, read_config};
use crate::model::embedder::{BERT_BUFFERS, RealmEmbedder};
use crate::model::reader::SpanReader;
use crate::qa::read::AnswerRule;
use crate::text::wordpiece::WordPieceTokenizer;
use crate::train::init::reader_from_bert;

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses `bytes` (the file `name`) unless their sha256 is the one `card` records.
fn check_sha256(bytes: &[u8], name: &str, sha256: &str, card: &str) -> Result<(), Error> {
    let found = sha256_hex(bytes);
    if found != sha256 {
        return Err(Error::Model(format!(
            "{name} has sha256 {found}, but {card} says {sha256}: the file is damaged or not the \
             one the card describes"
        )));
    }
    Ok(())
}

/// Refuses a `model.safetensors` whose embedding tables have other sizes than `config.json`
/// says, naming the two files (the mismatch would otherwise surface as a shape error of the
/// reader's weights, which hold the base's).
fn check_embedding_tables(config: &BertConfig, weights: &WeightMap) -> Result<(), Error> {
    let tables = [
        ("word_embeddings", "vocab_size", config.vocab_size),
        (
            "position_embeddings",
            "max_position_embeddings",
            config.max_position_embeddings,
        ),
        (
            "token_type_embeddings",
            "type_vocab_size",
            config.type_vocab_size,
        ),
    ];
    for (table, field, rows) in tables {
        let suffix = format!("embeddings.{table}.weight");
        // Checked before anything is built by the config's sizes (a reader's head, the layers).
        let Some((name, tensor)) = weights.iter().find(|(name, _)| name.ends_with(&suffix)) else {
            return Err(Error::Model(format!(
                "model.safetensors has no tensor named *{suffix}: not a BERT's weights"
            )));
        };
        if tensor.shape != [rows, config.hidden_size] {
            return Err(Error::Model(format!(
                "config.json says {field} {rows} and hidden_size {}, but model.safetensors' \
                 {name} has shape {:?}: the two files are not of one model",
                config.hidden_size, tensor.shape
            )));
        }
    }
    Ok(())
}

/// A base BERT read into memory, with the sha256 of its weights file.
pub struct BaseModel {
    pub config: BertConfig,
    pub weights: WeightMap,
    pub tokenizer: WordPieceTokenizer,
    pub sha256: String,
}

impl BaseModel {
    /// `config.json`'s and `model.safetensors`' bytes with a tokenizer already read.
    pub fn from_bytes(
        config_json: &[u8],
        safetensors: &[u8],
        tokenizer: WordPieceTokenizer,
    ) -> Result<Self, Error> {
        let config = read_config(config_json)?;
        let weights = read_safetensors(safetensors)?;
        let layers = layers_in(weights.keys());
        if layers > 0 && layers != config.num_hidden_layers {
            return Err(Error::Model(format!(
                "config.json says {} layers, but model.safetensors holds {layers}: the two files \
                 are not of one model",
                config.num_hidden_layers
            )));
        }
        check_embedding_tables(&config, &weights)?;
        // Single texts only: a retriever's base embeds no pairs (a reader's is checked for
        // them in `fresh_reader`).
        tokenizer.check_fits(config.vocab_size, config.type_vocab_size, false)?;
        Ok(Self {
            config,
            weights,
            tokenizer,
            sha256: sha256_hex(safetensors),
        })
    }

    /// The sentence embedder (mean pooling over the last layer, L2-normalised) on `device`.
    pub fn sentence_embedder(&self, device: &Device) -> Result<RealmEmbedder, Error> {
        let mut loader = WeightLoader::new(self.weights.clone(), device);
        let embedder = RealmEmbedder::load_sentence_transformer(&self.config, &mut loader, device)?;
        loader.finish(BERT_BUFFERS)?;
        Ok(embedder)
    }

    /// Refuses a base other than the one `what` was trained on.
    pub fn check_is(&self, trained_on: &str, what: &str) -> Result<(), Error> {
        if self.sha256 != trained_on {
            return Err(Error::Model(format!(
                "the base model's weights have sha256 {}, but {what} was trained on {trained_on}: \
                 give the base it was trained on",
                self.sha256
            )));
        }
        Ok(())
    }
}

/// The transformer layers a checkpoint's tensors name (`...encoder.layer.N....`): one more
/// than the highest N, 0 when none is named so.
fn layers_in<'a>(names: impl Iterator<Item = &'a String>) -> usize {
    names
        .filter_map(|name| {
            let (_, rest) = name.split_once("encoder.layer.")?;
            rest.split('.').next()?.parse::<usize>().ok()
        })
        .max()
        .map_or(0, |n| n + 1)
}

/// The widest answer span a reader card may ask for: 64 wordpieces (REALM's is 10). A batch
/// holds a passage's length times the width of spans, each `span_hidden_size` wide.
pub const MAX_SPAN_WIDTH: usize = 64;

/// `reader.json`: what a shipped reader is and how to rebuild it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderCard {
    /// sha256 of the base model's `model.safetensors`.
    pub base_sha256: String,
    /// Where the base beside this card is the F16 rounding of the one the reader was trained
    /// on (`realm bundle --f16`): that one's sha256; `base_sha256` is then the rounding's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_rounded_from: Option<String>,
    /// sha256 of `reader.safetensors`.
    pub sha256: String,
    /// Seed of the span head's initialisation (the tensors not shipped are rebuilt from it).
    pub head_seed: u64,
    pub reader: ReaderConfig,
    /// Wordpieces of `[CLS] question [SEP] passage [SEP]` the reader was trained on.
    pub max_length: usize,
    /// How open QA weighs the retriever's score against this reader's logits when it picks
    /// the answer ([`crate::qa::read::AnswerRule`]); chosen on training questions.
    #[serde(default)]
    pub retriever_weight: f32,
    /// Free text: data, steps, time, the command that trained it.
    #[serde(default)]
    pub trained: serde_json::Value,
}

/// The span head's LayerNorm scale in a reader's weights: its length is the head's width.
const SPAN_HEAD_NORM: &str = "layer_norm.gamma";

impl ReaderCard {
    /// How answers are picked with this reader.
    pub fn answer_rule(&self) -> AnswerRule {
        AnswerRule {
            retriever_weight: self.retriever_weight,
        }
    }

    /// Whether the card's sizes can be read with a base of `positions` position embeddings.
    pub fn check_sizes(&self, positions: usize) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Model(format!("reader.json: {what}")));
        if !(3..=positions).contains(&self.max_length) {
            return bad(format!(
                "max_length {} is outside 3..={positions} (the base model's positions)",
                self.max_length
            ));
        }
        if !(1..=self.max_length.min(MAX_SPAN_WIDTH)).contains(&self.reader.max_span_width) {
            return bad(format!(
                "reader.max_span_width {} is outside 1..={} (REALM reads spans of up to 10 \
                 wordpieces; each one more widens every batch by a passage's length of spans)",
                self.reader.max_span_width,
                self.max_length.min(MAX_SPAN_WIDTH)
            ));
        }
        if self.reader.span_hidden_size == 0 {
            return bad("reader.span_hidden_size is 0".into());
        }
        if !self.retriever_weight.is_finite() {
            return bad(format!(
                "retriever_weight {} is not a finite number",
                self.retriever_weight
            ));
        }
        let eps = self.reader.reader_layer_norm_eps;
        if !(eps > 0.0 && eps.is_finite()) {
            return bad(format!(
                "reader.reader_layer_norm_eps {eps} is not a positive number"
            ));
        }
        Ok(())
    }

    /// Whether `trained` (`reader.safetensors`) holds a span head as wide as the card says:
    /// checked before the head is built, which allocates by the card's width.
    pub fn check_head(&self, trained: &WeightMap) -> Result<(), Error> {
        let width = self.reader.span_hidden_size;
        match trained.get(SPAN_HEAD_NORM) {
            Some(norm) if norm.shape == [width] => Ok(()),
            Some(norm) => Err(Error::Model(format!(
                "reader.json: reader.span_hidden_size is {width}, but reader.safetensors' \
                 {SPAN_HEAD_NORM} has shape {:?}",
                norm.shape
            ))),
            None => Err(Error::Model(format!(
                "reader.safetensors holds no span head ({SPAN_HEAD_NORM})"
            ))),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Model(format!("reader.json is not a reader card: {e}")))
    }
}

/// `query.json`: what a fine-tuned question embedder `Embed_input` beside a reader is
/// (`query.safetensors`: the tensors `realm finetune-retriever` or `realm finetune
/// --retriever-layers` trained, by module path, matrices as int8 with a scale per row; the
/// passages keep the base model's embeddings, as REALM and ORQA fine-tune).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryCard {
    /// sha256 of the base model's `model.safetensors`.
    pub base_sha256: String,
    /// As [`ReaderCard::base_rounded_from`]: the model the base beside this card rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_rounded_from: Option<String>,
    /// sha256 of `query.safetensors`.
    pub sha256: String,
    /// Free text: data, steps, time, the command that trained it.
    #[serde(default)]
    pub trained: serde_json::Value,
}

impl QueryCard {
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Model(format!("query.json is not a question-embedder card: {e}")))
    }
}

/// The fine-tuned question embedder `card` describes: `base`'s sentence embedder with
/// `safetensors`' tensors (checked against the card's sha256, the base against its base
/// sha256) over it.
pub fn load_question_embedder(
    base: &BaseModel,
    card: &QueryCard,
    safetensors: &[u8],
    device: &Device,
) -> Result<RealmEmbedder, Error> {
    check_sha256(safetensors, "query.safetensors", &card.sha256, "query.json")?;
    base.check_is(&card.base_sha256, "this question embedder")?;
    let trained = read_safetensors(safetensors).and_then(dequantize_int8_matrices)?;
    import_params(base.sentence_embedder(device)?, &trained).map_err(|e| {
        Error::Model(format!(
            "query.safetensors does not fit the base model's embedder: {e}"
        ))
    })
}

/// A reader on `base` with a fresh span head drawn from `seed`, loaded strictly.
pub fn fresh_reader(
    base: &BaseModel,
    reader: &ReaderConfig,
    seed: u64,
    device: &Device,
) -> Result<SpanReader, Error> {
    let config = &base.config;
    (base.tokenizer).check_fits(config.vocab_size, config.type_vocab_size, true)?;
    let weights = reader_from_bert(&base.config, reader, &base.weights, seed);
    let mut loader = WeightLoader::new(weights, device);
    let model = SpanReader::load(&base.config, reader, &mut loader, device)?;
    loader.finish(&[])?;
    Ok(model)
}

/// The shipped reader `card` describes: `safetensors` (checked against the card's sha256)
/// over `base` (checked against the card's base sha256).
pub fn load_reader(
    base: &BaseModel,
    card: &ReaderCard,
    safetensors: &[u8],
    device: &Device,
) -> Result<SpanReader, Error> {
    check_sha256(
        safetensors,
        "reader.safetensors",
        &card.sha256,
        "reader.json",
    )?;
    base.check_is(&card.base_sha256, "this reader")?;
    card.check_sizes(base.config.max_position_embeddings)?;
    let trained = read_safetensors(safetensors)?;
    card.check_head(&trained)?;
    import_params(
        fresh_reader(base, &card.reader, card.head_seed, device)?,
        &trained,
    )
}

#[cfg(test)]
mod tests {
    use super::ReaderCard;

    fn card(max_length: usize, width: usize, weight: &str) -> ReaderCard {
        let json = format!(
            r#"{{"base_sha256": "", "sha256": "", "head_seed": 1, "max_length": {max_length},
                "reader": {{"max_span_width": {width}}}, "retriever_weight": {weight}}}"#
        );
        ReaderCard::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_tokenizer_or_embedding_table_of_another_size_is_refused() {
        use crate::checkpoint::weights::{HostTensor, WeightMap};
        use crate::model::config::BertConfig;
        use crate::text::wordpiece::WordPieceTokenizer;

        // Seven wordpieces (ids 0..=6), two segments (BERT's [CLS] a [SEP] b [SEP]).
        let tokenizer =
            WordPieceTokenizer::from_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\n").unwrap();
        assert!(tokenizer.check_fits(7, 2, true).is_ok());
        let e = tokenizer.check_fits(6, 2, false).unwrap_err().to_string();
        assert!(
            e.contains("token id 6, but the model's vocab_size is 6"),
            "{e}"
        );
        // One segment serves single texts (a retriever); a pair needs the second.
        assert!(tokenizer.check_fits(7, 1, false).is_ok());
        let e = tokenizer.check_fits(7, 1, true).unwrap_err().to_string();
        assert!(
            e.contains("segment id 1, but the model's type_vocab_size is 1"),
            "{e}"
        );

        let config = BertConfig::new(10, 4, 1, 1, 8);
        let tensor =
            |rows: usize| HostTensor::new("w", vec![rows, 4], vec![0.0; rows * 4]).unwrap();
        let table = |rows: usize| {
            WeightMap::from([
                (
                    "bert.embeddings.word_embeddings.weight".to_string(),
                    tensor(rows),
                ),
                (
                    "bert.embeddings.position_embeddings.weight".to_string(),
                    tensor(config.max_position_embeddings),
                ),
                (
                    "bert.embeddings.token_type_embeddings.weight".to_string(),
                    tensor(config.type_vocab_size),
                ),
            ])
        };
        assert!(super::check_embedding_tables(&config, &table(10)).is_ok());
        // A file without one of the tables is no BERT: refused before the config's sizes
        // build anything.
        let mut missing = table(10);
        missing.remove("bert.embeddings.position_embeddings.weight");
        let e = super::check_embedding_tables(&config, &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no tensor named *embeddings.position_embeddings.weight"),
            "{e}"
        );
        let e = super::check_embedding_tables(&config, &table(12))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vocab_size 10 and hidden_size 4, but model.safetensors' bert.embeddings.word_embeddings.weight has shape [12, 4]"),
            "{e}"
        );
    }

    #[test]
    fn layers_are_counted_from_the_tensor_names() {
        let names: Vec<String> = [
            "embeddings.word_embeddings.weight",
            "encoder.layer.0.attention.self.query.weight",
            "encoder.layer.5.output.dense.bias",
            "bert.encoder.layer.11.output.dense.bias",
        ]
        .map(String::from)
        .into();
        assert_eq!(super::layers_in(names[..3].iter()), 6);
        assert_eq!(super::layers_in(names.iter()), 12);
        assert_eq!(super::layers_in(names[..1].iter()), 0);
    }

    #[test]
    fn a_card_the_base_cannot_read_is_refused_by_name() {
        assert!(card(256, 10, "0.5").check_sizes(512).is_ok());
        for (bad, names) in [
            (
                card(100_000, 10, "0"),
                "max_length 100000 is outside 3..=512",
            ),
            (card(0, 10, "0"), "max_length 0"),
            (card(256, 0, "0"), "max_span_width 0"),
            (card(256, 65, "0"), "max_span_width 65 is outside 1..=64"),
        ] {
            let e = bad.check_sizes(512).unwrap_err().to_string();
            assert!(e.contains("reader.json") && e.contains(names), "{e}");
        }
        let mut narrow = card(256, 10, "0");
        narrow.reader.span_hidden_size = 0;
        let e = narrow.check_sizes(512).unwrap_err().to_string();
        assert!(e.contains("span_hidden_size is 0"), "{e}");
        let mut eps = card(256, 10, "0");
        eps.reader.reader_layer_norm_eps = -1.0;
        let e = eps.check_sizes(512).unwrap_err().to_string();
        assert!(e.contains("reader_layer_norm_eps -1"), "{e}");
        // JSON has no NaN: a card can only say it through a value set in code.
        let mut nan = card(256, 10, "0");
        nan.retriever_weight = f32::NAN;
        assert!(nan.check_sizes(512).is_err());
    }

    #[test]
    fn a_card_wider_than_its_span_head_is_refused_before_the_head_is_built() {
        use crate::checkpoint::weights::{HostTensor, WeightMap};

        let head = |width: usize| {
            let norm = HostTensor::new("g", vec![width], vec![1.0; width]).unwrap();
            WeightMap::from([(super::SPAN_HEAD_NORM.to_string(), norm)])
        };
        let mut wide = card(256, 10, "0");
        wide.reader.span_hidden_size = 256;
        assert!(wide.check_head(&head(256)).is_ok());
        // A hand-edited card: building its head would allocate 2 x 10^6 x hidden floats.
        wide.reader.span_hidden_size = 1_000_000;
        let e = wide.check_head(&head(256)).unwrap_err().to_string();
        assert!(
            e.contains("span_hidden_size is 1000000") && e.contains("shape [256]"),
            "{e}"
        );
        let e = wide.check_head(&WeightMap::new()).unwrap_err().to_string();
        assert!(e.contains("no span head"), "{e}");
    }
}
