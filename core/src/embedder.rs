//! The knowledge retriever's embedders: `Embed_input(x)` and `Embed_doc(z)` are a BERT
//! [CLS] pooler output projected to `retriever_proj_size` dims and layer-normalised
//! (Hugging Face's `RealmEmbedder`: `realm.*` BERT, `cls.dense`, `cls.LayerNorm`), and the
//! relevance score f(x, z) is their inner product.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use crate::Error;
use crate::bert::{Bert, BertInput, load_layer_norm};
use crate::config::BertConfig;
use crate::weights::WeightLoader;

/// `RealmEmbedder`: BERT with pooler, then `dense` and `LayerNorm` to the retrieval space.
#[derive(Module, Debug)]
pub struct RealmEmbedder {
    pub bert: Bert,
    pub projection: Linear,
    pub projection_norm: LayerNorm,
}

impl RealmEmbedder {
    /// Builds the embedder from tensors named as in a Hugging Face REALM embedder checkpoint.
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
            projection,
            projection_norm,
        })
    }

    /// `Embed_input(x)` or `Embed_doc(z)`: the same network embeds questions and passages.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq]` -> `[batch, retriever_proj_size]`
    pub fn embed(&self, input: &BertInput, device: &Device) -> Tensor<2> {
        let pooled = self
            .bert
            .forward(input, device)
            .pooler_output
            .expect("the embedder's BERT has a pooler");
        self.projection_norm
            .forward(self.projection.forward(pooled))
    }
}

/// f(x, z) = Embed_input(x) · Embed_doc(z) for every query and document.
///
/// # Shapes
/// - `queries`: `[queries, dim]`, `documents`: `[documents, dim]` -> `[queries, documents]`
pub fn relevance_score(queries: Tensor<2>, documents: Tensor<2>) -> Tensor<2> {
    queries.matmul(documents.transpose())
}
