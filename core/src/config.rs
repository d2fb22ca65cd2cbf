//! The BERT/REALM configuration, with field names copied from Hugging Face `config.json`
//! so that a checkpoint's config loads as it is.

use burn::config::Config;

/// The encoder's hyper-parameters. Field names follow Hugging Face's `BertConfig` and
/// `RealmConfig` (`retriever_proj_size` is the 128-d projection of `Embed_input`/`Embed_doc`).
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[config(default = "HiddenAct::Gelu")]
    pub hidden_act: HiddenAct,
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    #[config(default = 2)]
    pub type_vocab_size: usize,
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    #[config(default = 0)]
    pub pad_token_id: usize,
    #[config(default = 128)]
    pub retriever_proj_size: usize,
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

impl BertConfig {
    /// Checks the relations between fields that a forward pass relies on.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let fail = |msg: String| Err(crate::Error::Config(msg));
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return fail(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.vocab_size == 0 || self.max_position_embeddings == 0 || self.type_vocab_size == 0 {
            return fail(
                "vocab_size, max_position_embeddings and type_vocab_size must be positive".into(),
            );
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
