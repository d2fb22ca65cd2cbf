//! Parity with Hugging Face transformers 4.57.6's REALM on the tiny random model in
//! `../shared/data/realm-parity-tiny` (its SOURCE.md lists every tensor): the embedder and
//! the scorer, on burn's CPU backend and its wgpu backend.
//!
//! Tolerances are the fixture's: hidden states and scores within abs 1e-5 plus rel 1e-4.
//! To regenerate the fixture see that SOURCE.md (transformers 4.57.6, torch 2.9.1, CPU).

use realm_core::model::embedder::relevance_score;
use realm_tests::{assert_close, bert_input, parity_devices, tiny_realm, values};

const ABS: f32 = 1e-5;
const REL: f32 = 1e-4;

#[test]
fn embedder_hidden_states_pooler_and_projection_match_transformers() {
    let Some(f) = tiny_realm() else { return };
    for (name, device) in parity_devices() {
        let embedder = f.embedder(&device);
        let input = bert_input(&f.io, "embedder.");
        let out = embedder.bert.forward(&input, &device);
        for (i, h) in out.hidden_states.into_iter().enumerate() {
            let key = format!("embedder.hidden_states.{i}");
            assert_close(
                &format!("{name}: {key}"),
                &values(h),
                &f.io[&key].data,
                ABS,
                REL,
            );
        }
        let pooled = values(out.pooler_output.unwrap());
        assert_close(
            &format!("{name}: pooler_output"),
            &pooled,
            &f.io["embedder.pooler_output"].data,
            ABS,
            REL,
        );
        let projected = values(embedder.embed(&input, &device));
        assert_close(
            &format!("{name}: projected_score"),
            &projected,
            &f.io["embedder.projected_score"].data,
            ABS,
            REL,
        );
    }
}

#[test]
fn block_embeddings_match_the_checkpoints_block_emb() {
    let Some(f) = tiny_realm() else { return };
    for (name, device) in parity_devices() {
        let blocks = values(
            f.embedder(&device)
                .embed(&bert_input(&f.io, "blocks."), &device),
        );
        assert_close(
            &format!("{name}: blocks"),
            &blocks,
            &f.io["blocks.projected_score"].data,
            ABS,
            REL,
        );
        assert_close(
            &format!("{name}: block_emb"),
            &blocks,
            &f.weights["block_emb"].data,
            ABS,
            REL,
        );
    }
}

#[test]
fn scorer_relevance_matches_transformers() {
    let Some(f) = tiny_realm() else { return };
    for (name, device) in parity_devices() {
        let embedder = f.embedder(&device);
        let query = embedder.embed(&bert_input(&f.io, "scorer."), &device); // [2, 16]
        let candidates = embedder.embed(&bert_input(&f.io, "scorer.candidate_"), &device); // [6, 16]
        let [batch, dim] = query.dims();
        let per_query = candidates.dims()[0] / batch;
        assert_close(
            &format!("{name}: query_score"),
            &values(query.clone()),
            &f.io["scorer.query_score"].data,
            ABS,
            REL,
        );
        let candidate_values = values(candidates.clone());
        assert_close(
            &format!("{name}: candidate_score"),
            &candidate_values,
            &f.io["scorer.candidate_score"].data,
            ABS,
            REL,
        );
        // einsum("bd,bnd->bn"): each query against its own candidates.
        let candidates = candidates.reshape([batch, per_query, dim]); // [batch, candidates, dim]
        let scores: Vec<f32> = (0..batch)
            .flat_map(|b| {
                let q = query.clone().narrow(0, b, 1); // [1, dim]
                let z = candidates.clone().narrow(0, b, 1).reshape([per_query, dim]); // [candidates, dim]
                values(relevance_score(q, z))
            })
            .collect();
        assert_close(
            &format!("{name}: relevance_score"),
            &scores,
            &f.io["scorer.relevance_score"].data,
            ABS,
            REL,
        );
    }
}
