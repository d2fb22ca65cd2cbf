//! The knowledge retriever's embedders: `Embed_input(x)` and `Embed_doc(z)` are a BERT
//! [CLS] pooler output projected to `retriever_proj_size` dims and layer-normalised
//! (Hugging Face's `RealmEmbedder`: `realm.*` BERT, `cls.dense`, `cls.LayerNorm`), or, for
//! sentence-transformers checkpoints such as all-MiniLM-L6-v2, a normalised mean pooling; the
//! relevance score f(x, z) is their inner product.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use crate::Error;
use crate::checkpoint::weights::WeightLoader;
use crate::model::bert::{Bert, load_layer_norm};
use crate::model::config::BertConfig;
use crate::text::BertInput;

/// How a sequence of hidden states becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// BERT's pooler on [CLS]: tanh(dense(h_[CLS])), as REALM does.
    Cls,
    /// The attention-masked mean of the last hidden states, as sentence-transformers
    /// (all-MiniLM-L6-v2) were trained.
    Mean,
}

/// `Embed_input`/`Embed_doc`: BERT, a pooling, then optionally REALM's `dense` + `LayerNorm`
/// projection to `retriever_proj_size` dims, and optionally L2 normalisation.
#[derive(Module, Debug)]
pub struct RealmEmbedder {
    pub bert: Bert,
    pub projection: Option<Linear>,
    pub projection_norm: Option<LayerNorm>,
    #[module(skip)]
    pub pooling: Pooling,
    #[module(skip)]
    pub normalize: bool,
}

/// Tensors of a Hugging Face `RealmEmbedder` checkpoint the embedder does not use.
pub const EMBEDDER_UNUSED: &[&str] = &[
    // The MLM head `RealmScorerProjection` carries; only its `dense` and `LayerNorm` run.
    "cls.predictions.",
];

/// Buffers of a Hugging Face `BertModel` checkpoint that are not weights.
pub const BERT_BUFFERS: &[&str] = &[
    // A constant 0..max_position_embeddings; the forward builds positions itself.
    "embeddings.position_ids",
];

impl RealmEmbedder {
    /// Builds the embedder from tensors named as in a Hugging Face REALM embedder checkpoint
    /// (`realm.*` BERT with pooler, `cls.dense`, `cls.LayerNorm`).
    pub fn load(
        config: &BertConfig,
        weights: &mut WeightLoader,
        device: &Device,
    ) -> Result<Self, Error> {
        let bert = Bert::load(config, weights, "realm.", true, device)?;
        let (h, p) = (config.hidden_size, config.retriever_proj_size);
        let projection = Linear {
            weight: weights.take_linear_weight("cls.dense.weight", h, p)?,
            bias: Some(weights.take_param("cls.dense.bias", [p])?),
        };
        let projection_norm =
            load_layer_norm(weights, "cls.LayerNorm", p, config.layer_norm_eps, device)?;
        Ok(Self {
            bert,
            projection: Some(projection),
            projection_norm: Some(projection_norm),
            pooling: Pooling::Cls,
            normalize: false,
        })
    }

    /// A sentence-transformers BERT (all-MiniLM-L6-v2's `model.safetensors`: plain
    /// `BertModel` names, pooler included): mean pooling and L2 normalisation, no projection,
    /// so it embeds into `hidden_size` dims exactly as `SentenceTransformer.encode` does.
    pub fn load_sentence_transformer(
        config: &BertConfig,
        weights: &mut WeightLoader,
        device: &Device,
    ) -> Result<Self, Error> {
        Ok(Self {
            bert: Bert::load(config, weights, "", true, device)?,
            projection: None,
            projection_norm: None,
            pooling: Pooling::Mean,
            normalize: true,
        })
    }

    /// The width of the embeddings `embed` returns.
    pub fn dim(&self) -> usize {
        match &self.projection {
            Some(projection) => projection.weight.dims()[1],
            None => self.bert.embeddings.word_embeddings.weight.dims()[1],
        }
    }

    /// `Embed_input(x)` or `Embed_doc(z)`: the same network embeds questions and passages.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq]` -> `[batch, dim]`
    pub fn embed(&self, input: &BertInput, device: &Device) -> Tensor<2> {
        let out = self.bert.forward(input, device);
        let pooled = match self.pooling {
            Pooling::Cls => out.pooler_output.expect("Cls pooling needs BERT's pooler"),
            Pooling::Mean => mean_pool(out.last_hidden_state, &input.attention_mask, device),
        };
        let projected = match (&self.projection, &self.projection_norm) {
            (Some(dense), Some(norm)) => norm.forward(dense.forward(pooled)),
            (Some(dense), None) => dense.forward(pooled),
            _ => pooled,
        };
        if self.normalize {
            l2_normalize(projected)
        } else {
            projected
        }
    }
}

/// The mean of the hidden states over the tokens the mask keeps.
///
/// # Shapes
/// - `hidden`: `[batch, seq, hidden]`, `mask`: `[batch * seq]` -> `[batch, hidden]`
pub fn mean_pool(hidden: Tensor<3>, mask: &[u32], device: &Device) -> Tensor<2> {
    let [batch, seq, _] = hidden.dims();
    let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    let mask = Tensor::<2>::from_data(burn::tensor::TensorData::new(mask, [batch, seq]), device)
        .reshape([batch, seq, 1]); // [batch, seq, 1]
    let summed = (hidden * mask.clone()).sum_dim(1).squeeze_dim::<2>(1); // [batch, hidden]
    let counts = mask.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9); // [batch, 1]
    summed / counts
}

/// Each row divided by its Euclidean norm (at least 1e-12), as `torch.nn.functional.normalize`.
///
/// # Shapes
/// - `x`: `[batch, dim]` -> `[batch, dim]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12); // [batch, 1]
    x / norm
}

/// f(x, z) = Embed_input(x) · Embed_doc(z) for every query and document.
///
/// # Shapes
/// - `queries`: `[queries, dim]`, `documents`: `[documents, dim]` -> `[queries, documents]`
pub fn relevance_score(queries: Tensor<2>, documents: Tensor<2>) -> Tensor<2> {
    queries.matmul(documents.transpose())
}
