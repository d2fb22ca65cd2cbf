//! The BERT/REALM configuration, with field names copied from Hugging Face `config.json`
//! so that a checkpoint's config loads as it is.

use serde::{Deserialize, Serialize};

/// The encoder's hyper-parameters. Field names follow Hugging Face's `BertConfig` and
/// `RealmConfig` (`retriever_proj_size` is the 128-d projection of `Embed_input`/`Embed_doc`),
/// so a checkpoint's `config.json` deserialises as it is; fields it lacks take BERT's and
/// REALM's defaults, and fields this port does not use are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: HiddenAct,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "defaults::type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "defaults::retriever_proj_size")]
    pub retriever_proj_size: usize,
}

mod defaults {
    pub fn hidden_act() -> super::HiddenAct {
        super::HiddenAct::Gelu
    }
    pub fn max_position_embeddings() -> usize {
        512
    }
    pub fn type_vocab_size() -> usize {
        2
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
    pub fn retriever_proj_size() -> usize {
        128
    }
}

/// The feed-forward activation, spelled as in `config.json` (`"gelu"`, `"gelu_new"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HiddenAct {
    /// The exact, erf-based GELU.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU.
    #[serde(rename = "gelu_new")]
    GeluNew,
    #[serde(rename = "relu")]
    Relu,
}

/// The most layers a config may declare (BERT-large has 24): a bound on what a damaged or
/// hostile `config.json` makes the loader allocate before the weights are read.
pub const MAX_LAYERS: usize = 256;

impl BertConfig {
    /// A config with the given sizes and every other field at its default.
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        intermediate_size: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            hidden_act: defaults::hidden_act(),
            max_position_embeddings: defaults::max_position_embeddings(),
            type_vocab_size: defaults::type_vocab_size(),
            layer_norm_eps: defaults::layer_norm_eps(),
            pad_token_id: 0,
            retriever_proj_size: defaults::retriever_proj_size(),
        }
    }

    /// Checks the relations between fields that a forward pass relies on.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let fail = |msg: String| Err(crate::Error::Config(msg));
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return fail(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.hidden_size == 0 || self.intermediate_size == 0 {
            return fail("hidden_size and intermediate_size must be positive".into());
        }
        if !(1..=MAX_LAYERS).contains(&self.num_hidden_layers) {
            return fail(format!(
                "num_hidden_layers {} is outside 1..={MAX_LAYERS}",
                self.num_hidden_layers
            ));
        }
        if self.vocab_size == 0 || self.max_position_embeddings == 0 || self.type_vocab_size == 0 {
            return fail(
                "vocab_size, max_position_embeddings and type_vocab_size must be positive".into(),
            );
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return fail(format!(
                "layer_norm_eps {} is not a positive number",
                self.layer_norm_eps
            ));
        }
        if self.pad_token_id >= self.vocab_size {
            return fail(format!(
                "pad_token_id {} is outside the vocabulary",
                self.pad_token_id
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The span reader's hyper-parameters, as named in Hugging Face's `RealmConfig`; fields a
/// `config.json` lacks take REALM's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaderConfig {
    #[serde(default = "reader_defaults::span_hidden_size")]
    pub span_hidden_size: usize,
    /// Spans of 1..=max_span_width wordpieces are candidates (REALM: 10).
    #[serde(default = "reader_defaults::max_span_width")]
    pub max_span_width: usize,
    #[serde(default = "reader_defaults::reader_layer_norm_eps")]
    pub reader_layer_norm_eps: f64,
    /// How many retrieved blocks the reader reads.
    #[serde(default = "reader_defaults::reader_beam_size")]
    pub reader_beam_size: usize,
    /// Wordpieces of `[CLS] question [SEP] block [SEP]`.
    #[serde(default = "reader_defaults::reader_seq_len")]
    pub reader_seq_len: usize,
}

mod reader_defaults {
    pub fn span_hidden_size() -> usize {
        256
    }
    pub fn max_span_width() -> usize {
        10
    }
    pub fn reader_layer_norm_eps() -> f64 {
        1e-3
    }
    pub fn reader_beam_size() -> usize {
        5
    }
    pub fn reader_seq_len() -> usize {
        320
    }
}

/// A Hugging Face `config.json` (BERT or REALM) as a [`BertConfig`], validated.
pub fn read_config(json: &[u8]) -> Result<BertConfig, crate::Error> {
    let config: BertConfig = serde_json::from_slice(json)?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hugging_face_config_and_ignores_unknown_fields() {
        let json = br#"{"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu_new",
            "max_position_embeddings": 128, "layer_norm_eps": 1e-12, "model_type": "realm",
            "retriever_proj_size": 16, "pad_token_id": 1}"#;
        let config = read_config(json).unwrap();
        assert_eq!(config.hidden_act, HiddenAct::GeluNew);
        assert_eq!(config.retriever_proj_size, 16);
        assert!(read_config(br#"{"vocab_size": 1}"#).is_err());
        // Sizes that would build nothing, or allocate without bound, before any weight is read.
        for (field, value, names) in [
            (
                "hidden_size",
                "0",
                "hidden_size and intermediate_size must be positive",
            ),
            (
                "intermediate_size",
                "0",
                "hidden_size and intermediate_size must be positive",
            ),
            (
                "num_hidden_layers",
                "0",
                "num_hidden_layers 0 is outside 1..=256",
            ),
            (
                "num_hidden_layers",
                "100000000",
                "num_hidden_layers 100000000 is outside",
            ),
        ] {
            let text = std::str::from_utf8(json).unwrap();
            let bad = text.replacen(
                &format!("\"{field}\": "),
                &format!("\"{field}\": {value}, \"x_{field}\": "),
                1,
            );
            let e = read_config(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(names), "{field} {value}: {e}");
        }
    }
}
