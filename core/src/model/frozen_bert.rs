//! BERT's forward for the frozen encoders on the CPU (indexing the corpus, embedding a
//! question, reading passages in `ask`): the same maths as [`Bert::forward`], on plain f32
//! buffers, with weights packed once for [`crate::linalg`]'s kernels (f32, or bf16 on AMX or AVX-512 BF16).
//!
//! What it saves over the module path: the query, key and value projections are one product
//! (`[hidden, 3 hidden]`); each head's attention reads its q/k/v columns in place (no
//! reshapes, no copies); each product's bias is added in the one pass that follows it
//! (q's scale, the activation, or residual + LayerNorm), row by row; nothing is allocated
//! per operation but the outputs and LayerNorm's one row of squares. No autodiff: training keeps
//! [`Bert`], which stays the reference this is tested against.

use crate::linalg::bf16::PackedB;
use crate::linalg::{Matrix, Precision, strided_product_f32};
use crate::model::bert::Bert;
use crate::model::config::HiddenAct;
use crate::model::fast_math;
use crate::text::BertInput;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

/// A [`Bert`]'s weights, packed for inference at one [`Precision`].
#[derive(Clone, Debug)]
pub struct FrozenBert {
    hidden: usize,
    heads: usize,
    act: HiddenAct,
    eps: f32,
    /// `[vocab, hidden]`, `[positions, hidden]`, `[types, hidden]`
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    pooler: Option<Dense>,
    precision: Precision,
}

#[derive(Clone, Debug)]
struct Layer {
    /// `[hidden, 3 hidden]`: the query, key and value projections side by side.
    qkv: Dense,
    attention_output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

/// A linear layer's weight packed for [`Matrix::product`], and its bias.
#[derive(Clone, Debug)]
pub(crate) struct Dense {
    weight: Matrix,
    bias: Vec<f32>,
}

#[derive(Clone, Debug)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 after convert")
}

fn dense(linears: &[&Linear], precision: Precision) -> Dense {
    let [k, _] = linears[0].weight.dims();
    let parts: Vec<(Vec<f32>, usize)> = linears
        .iter()
        .map(|l| (values(l.weight.val()), l.weight.dims()[1]))
        .collect();
    let n: usize = parts.iter().map(|(_, n)| n).sum();
    let mut weight = Vec::with_capacity(k * n);
    for row in 0..k {
        for (w, width) in &parts {
            weight.extend_from_slice(&w[row * width..(row + 1) * width]);
        }
    }
    let bias = linears
        .iter()
        .flat_map(|l| match &l.bias {
            Some(b) => values(b.val()),
            None => vec![0.0; l.weight.dims()[1]],
        })
        .collect();
    Dense {
        weight: Matrix::new(weight, k, n, precision),
        bias,
    }
}

fn norm(n: &LayerNorm) -> Norm {
    let gamma = values(n.gamma.val());
    let beta = match &n.beta {
        Some(b) => values(b.val()),
        None => vec![0.0; gamma.len()],
    };
    Norm { gamma, beta }
}

impl FrozenBert {
    /// Packs `bert`'s weights; `eps` is its config's `layer_norm_eps`.
    ///
    /// # Panics
    /// If `precision` is not available on this machine ([`Precision::available`]).
    pub fn new(bert: &Bert, eps: f64, precision: Precision) -> Self {
        let e = &bert.embeddings;
        let layers = bert
            .layers
            .iter()
            .map(|l| Layer {
                qkv: dense(&[&l.query, &l.key, &l.value], precision),
                attention_output: dense(&[&l.attention_output], precision),
                attention_norm: norm(&l.attention_layer_norm),
                intermediate: dense(&[&l.intermediate], precision),
                output: dense(&[&l.output], precision),
                output_norm: norm(&l.output_layer_norm),
            })
            .collect();
        Self {
            hidden: e.word_embeddings.weight.dims()[1],
            heads: bert.num_attention_heads,
            act: bert.hidden_act,
            eps: eps as f32,
            word: values(e.word_embeddings.weight.val()),
            position: values(e.position_embeddings.weight.val()),
            token_type: values(e.token_type_embeddings.weight.val()),
            embedding_norm: norm(&e.layer_norm),
            layers,
            // The pooler is one small product per sequence: f32 always.
            pooler: bert.pooler.as_ref().map(|p| dense(&[p], Precision::F32)),
            precision,
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// The last hidden state, row-major `[batch, seq, hidden]`.
    ///
    /// # Panics
    /// If the input's lengths disagree with `batch * seq`, or an id, position or segment is
    /// outside the embedding tables (as [`Bert::forward`] does).
    pub fn forward(&self, input: &BertInput) -> Vec<f32> {
        let (batch, seq, h) = (input.batch, input.seq, self.hidden);
        let tokens = batch * seq;
        assert_eq!(
            input.input_ids.len(),
            tokens,
            "input_ids must hold batch * seq ids"
        );
        assert_eq!(
            input.attention_mask.len(),
            tokens,
            "attention_mask must be [batch, seq]"
        );
        assert_eq!(
            input.token_type_ids.len(),
            tokens,
            "token_type_ids must be [batch, seq]"
        );
        assert!(
            seq * h <= self.position.len(),
            "sequence {seq} is longer than the {} positions",
            self.position.len() / h
        );
        let mut x = vec![0f32; tokens * h]; // [batch * seq, hidden]
        for (t, row) in x.chunks_exact_mut(h).enumerate() {
            fn row_of<'a>(table: &'a [f32], id: u32, h: usize, what: &str) -> &'a [f32] {
                let at = id as usize * h;
                assert!(
                    at < table.len(),
                    "{what} {id} is outside its embedding table"
                );
                &table[at..at + h]
            }
            let word = row_of(&self.word, input.input_ids[t], h, "token id");
            let position = row_of(&self.position, (t % seq) as u32, h, "position");
            let segment = row_of(&self.token_type, input.token_type_ids[t], h, "segment id");
            for (i, v) in row.iter_mut().enumerate() {
                *v = word[i] + position[i] + segment[i];
            }
        }
        layer_norm_rows(&mut x, h, &self.embedding_norm, self.eps);

        // 0 on attended keys, f32::MIN on padding (Bert::forward's additive mask).
        let key_bias: Vec<f32> = input
            .attention_mask
            .iter()
            .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
            .collect();
        let padded = input.attention_mask.contains(&0);
        SCRATCH.with_borrow_mut(|scratch| {
            let inner = self.layers.first().map_or(0, |l| l.intermediate.weight.n());
            scratch.reserve(tokens, h, inner);
            for layer in &self.layers {
                let bias = padded.then_some(&key_bias[..]);
                self.layer(layer, &mut x, batch, seq, bias, scratch);
            }
        });
        x
    }

    /// `tanh(dense(h_[CLS]))` of a [`forward`](Self::forward) output: `[batch, hidden]`;
    /// `None` without a pooler.
    pub fn pool(&self, last_hidden: &[f32], batch: usize, seq: usize) -> Option<Vec<f32>> {
        let pooler = self.pooler.as_ref()?;
        let h = self.hidden;
        let cls: Vec<f32> = (0..batch)
            .flat_map(|b| last_hidden[b * seq * h..][..h].iter().copied())
            .collect();
        let mut out = vec![0f32; batch * h];
        pooler.weight.product(&cls, batch, &mut out);
        for row in out.chunks_exact_mut(h) {
            for (v, b) in row.iter_mut().zip(&pooler.bias) {
                *v = (*v + b).tanh();
            }
        }
        Some(out)
    }

    /// One post-norm transformer layer, `x` `[batch * seq, hidden]` in place.
    fn layer(
        &self,
        layer: &Layer,
        x: &mut [f32],
        batch: usize,
        seq: usize,
        key_bias: Option<&[f32]>,
        s: &mut Scratch,
    ) {
        let (h, heads) = (self.hidden, self.heads);
        let (tokens, head) = (batch * seq, h / heads);
        let scale = 1.0 / (head as f32).sqrt();
        // Each product's bias joins the pass that follows it (the scale, the activation, the
        // residual and LayerNorm), one row at a time while it is in the first-level cache,
        // instead of a pass of its own over the whole product.
        let qkv = &mut s.qkv[..tokens * 3 * h];
        layer.qkv.weight.product(x, tokens, qkv); // [tokens, 3 hidden]
        for row in qkv.chunks_exact_mut(3 * h) {
            let (q, kv) = row.split_at_mut(h);
            let (q_bias, kv_bias) = layer.qkv.bias.split_at(h);
            q.iter_mut()
                .zip(q_bias)
                .for_each(|(v, b)| *v = (*v + b) * scale);
            kv.iter_mut().zip(kv_bias).for_each(|(v, b)| *v += b);
        }
        let (qkv, context) = (&s.qkv[..tokens * 3 * h], &mut s.context[..tokens * h]);
        // One sequence's attention per task: its rows of q/k/v in, its rows of context out.
        let attend = |(b, context): (usize, &mut [f32])| {
            let rows = &qkv[b * seq * 3 * h..(b + 1) * seq * 3 * h]; // [seq, 3 hidden]
            let bias = key_bias.map(|bias| &bias[b * seq..(b + 1) * seq]);
            self.attention(rows, bias, seq, context);
        };
        #[cfg(not(target_family = "wasm"))]
        {
            use rayon::prelude::*;
            context.par_chunks_mut(seq * h).enumerate().for_each(attend);
        }
        #[cfg(target_family = "wasm")]
        context.chunks_mut(seq * h).enumerate().for_each(attend);
        // x = LayerNorm(context Wo + bo + x)
        let projected = &mut s.projected[..tokens * h];
        let attention_output = &layer.attention_output;
        attention_output
            .weight
            .product(&s.context[..tokens * h], tokens, projected);
        add_and_norm(
            x,
            projected,
            &attention_output.bias,
            &layer.attention_norm,
            self.eps,
        );
        // x = LayerNorm(act(x Wi + bi) Wo2 + bo2 + x)
        let inner_width = layer.intermediate.weight.n();
        let inner = &mut s.inner[..tokens * inner_width];
        layer.intermediate.weight.product(x, tokens, inner);
        for row in inner.chunks_exact_mut(inner_width) {
            row.iter_mut()
                .zip(&layer.intermediate.bias)
                .for_each(|(v, b)| *v += b);
            activation_in_place(row, self.act);
        }
        layer.output.weight.product(inner, tokens, projected);
        add_and_norm(
            x,
            projected,
            &layer.output.bias,
            &layer.output_norm,
            self.eps,
        );
    }
}

impl FrozenBert {
    /// Every head's `softmax(q k^T + bias) v` for one sequence: `rows` `[seq, 3 hidden]`
    /// (q already scaled by 1 / sqrt(head)), `context` `[seq, hidden]`.
    fn attention(&self, rows: &[f32], bias: Option<&[f32]>, seq: usize, context: &mut [f32]) {
        let (h, heads) = (self.hidden, self.heads);
        let head = h / heads;
        ATTENTION.with_borrow_mut(|a| {
            if a.scores.len() < seq * seq {
                a.scores.resize(seq * seq, 0.0);
            }
            let scores = &mut a.scores[..seq * seq];
            for hd in 0..heads {
                let q = &rows[hd * head..]; // [seq, head] at row stride 3 hidden
                let k = &rows[h + hd * head..];
                let v = &rows[2 * h + hd * head..];
                let out = &mut context[hd * head..]; // [seq, head] at row stride hidden
                // scores = q k^T (k read transposed); context = softmax(scores + bias) v
                match self.precision {
                    Precision::Bf16 => {
                        a.keys.repack(k, 1, 3 * h, head, seq);
                        a.keys.product(q, 3 * h, seq, scores, seq);
                        fast_math::softmax_biased_in_place(scores, seq, bias);
                        a.values.repack(v, 3 * h, 1, seq, head);
                        a.values.product(scores, seq, seq, out, h);
                    }
                    Precision::F32 => {
                        strided_product_f32(q, 3 * h, 1, k, 1, 3 * h, seq, head, seq, scores, seq);
                        fast_math::softmax_biased_in_place(scores, seq, bias);
                        strided_product_f32(scores, seq, 1, v, 3 * h, 1, seq, seq, head, out, h);
                    }
                }
            }
        });
    }
}

/// One thread's attention buffers: a head's scores, and (for bf16) its keys and values
/// packed into bf16 tiles.
struct Attention {
    scores: Vec<f32>,
    keys: PackedB,
    values: PackedB,
}

thread_local! {
    static ATTENTION: std::cell::RefCell<Attention> = std::cell::RefCell::new(Attention {
        scores: Vec::new(),
        keys: PackedB::strided(&[], 0, 0, 0, 0),
        values: PackedB::strided(&[], 0, 0, 0, 0),
    });
}

thread_local! {
    /// Each thread's buffers, grown as needed and kept between forwards: fresh pages for
    /// every forward cost a fifth of it (the kernel zeroes each page on first touch).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The buffers a forward reuses across its layers (each at least as long as the forward
/// needs; the forward slices them).
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    inner: Vec<f32>,
}

impl Scratch {
    fn reserve(&mut self, tokens: usize, h: usize, inner: usize) {
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        };
        grow(&mut self.qkv, tokens * 3 * h);
        grow(&mut self.context, tokens * h);
        grow(&mut self.projected, tokens * h);
        grow(&mut self.inner, tokens * inner);
    }
}

impl Dense {
    /// `linear` packed at `precision`.
    pub(crate) fn new(linear: &Linear, precision: Precision) -> Self {
        dense(&[linear], precision)
    }

    pub(crate) fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `out = x W + b`, `x` `[m, k]`.
    pub(crate) fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.weight.product(x, m, out);
        for row in out.chunks_exact_mut(self.bias.len()) {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
        }
    }
}

/// `x = LayerNorm(x + (residual + bias))` row by row, each row normalised while it is in
/// the first-level cache.
fn add_and_norm(x: &mut [f32], residual: &[f32], bias: &[f32], norm: &Norm, eps: f32) {
    let h = bias.len();
    let mut squares = vec![0f32; h];
    for (row, residual) in x.chunks_exact_mut(h).zip(residual.chunks_exact(h)) {
        for ((v, r), b) in row.iter_mut().zip(residual).zip(bias) {
            *v += r + b;
        }
        layer_norm_row(row, norm, eps, &mut squares);
    }
}

/// LayerNorm over each `h`-wide row, in place.
fn layer_norm_rows(x: &mut [f32], h: usize, norm: &Norm, eps: f32) {
    let mut squares = vec![0f32; h];
    for row in x.chunks_exact_mut(h) {
        layer_norm_row(row, norm, eps, &mut squares);
    }
}

/// LayerNorm of one row, in place: biased variance, as burn's and PyTorch's. `squares` (the
/// row's length) holds its squared deviations, summed in lanes like the mean.
fn layer_norm_row(row: &mut [f32], norm: &Norm, eps: f32, squares: &mut [f32]) {
    let h = row.len();
    let mean = fast_math::sum_lanes(row) / h as f32;
    squares
        .iter_mut()
        .zip(&*row)
        .for_each(|(s, v)| *s = (v - mean) * (v - mean));
    let var = fast_math::sum_lanes(squares) / h as f32;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

fn activation_in_place(x: &mut [f32], act: HiddenAct) {
    match act {
        HiddenAct::Gelu => fast_math::gelu_in_place(x),
        HiddenAct::GeluNew => x.iter_mut().for_each(|v| {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            *v = 0.5 * *v * (1.0 + (c * (*v + 0.044_715 * *v * *v * *v)).tanh());
        }),
        HiddenAct::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::weights::WeightLoader;
    use crate::model::config::BertConfig;
    use crate::rng::{SplitMix64, fresh_seed};
    use crate::skeleton::seeded_weights;

    fn random_input(rng: &mut SplitMix64, batch: usize, seq: usize, vocab: usize) -> BertInput {
        let mut mask = vec![1u32; batch * seq];
        // The last row is padded from the middle on.
        mask[(batch - 1) * seq + seq / 2..].fill(0);
        BertInput {
            input_ids: (0..batch * seq)
                .map(|_| (rng.next_u64() % vocab as u64) as u32)
                .collect(),
            token_type_ids: (0..batch * seq)
                .map(|i| (i % seq >= seq / 3) as u32)
                .collect(),
            attention_mask: mask,
            batch,
            seq,
        }
    }

    fn bert(config: &BertConfig, seed: u64, with_pooler: bool) -> Bert {
        let device = crate::device::cpu_device();
        let mut loader = WeightLoader::new(seeded_weights(config, seed), &device);
        Bert::load(config, &mut loader, "realm.", with_pooler, &device).expect("seeded weights")
    }

    #[test]
    fn f32_forward_matches_the_module_forward_with_padding() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let config = BertConfig::new(97, 32, 2, 4, 64);
        let model = bert(&config, seed, true);
        let frozen = FrozenBert::new(&model, config.layer_norm_eps, Precision::F32);
        let input = random_input(&mut rng, 3, 11, 97);
        let device = crate::device::cpu_device();
        let want = model.forward(&input, &device);
        let got = frozen.forward(&input);
        let want_hidden = values(want.last_hidden_state);
        assert_eq!(got.len(), want_hidden.len());
        for (i, (g, w)) in got.iter().zip(&want_hidden).enumerate() {
            assert!((g - w).abs() < 1e-5, "seed {seed}: hidden {i}: {g} vs {w}");
        }
        let pooled = frozen.pool(&got, 3, 11).unwrap();
        for (g, w) in pooled.iter().zip(values(want.pooler_output.unwrap())) {
            assert!((g - w).abs() < 1e-5, "seed {seed}: pooler {g} vs {w}");
        }
    }

    #[test]
    fn bf16_forward_stays_close_to_f32() {
        if !Precision::Bf16.available() {
            eprintln!("skipped: no bf16 kernel (AMX, AVX-512 BF16) on this machine");
            return;
        }
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let config = BertConfig::new(97, 64, 2, 4, 128);
        let model = bert(&config, seed, false);
        let input = random_input(&mut rng, 2, 40, 97);
        let f32_out =
            FrozenBert::new(&model, config.layer_norm_eps, Precision::F32).forward(&input);
        let bf16_out =
            FrozenBert::new(&model, config.layer_norm_eps, Precision::Bf16).forward(&input);
        // Each token's hidden vector keeps its direction (LayerNorm keeps the scale ~1). The
        // seeded weights are 30 times wider than a trained BERT's, so rounding errors grow
        // more here than in a real model (parity_minilm.rs: the real MiniLM, tighter).
        for (t, (a, b)) in f32_out.chunks(64).zip(bf16_out.chunks(64)).enumerate() {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cosine = dot / (norm(a) * norm(b));
            assert!(cosine > 0.98, "seed {seed}: token {t} cosine {cosine}");
        }
        assert_ne!(f32_out, bf16_out, "bf16 must actually round");
    }
}
