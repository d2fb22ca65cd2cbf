// Fused inner product + top-k: for each query, the k documents of one index chunk with the
// largest inner product, in the project's order (higher score first, then lower id).
//
// One workgroup per query. Each of the WG invocations scores a strided share of the chunk and
// keeps its own sorted top-k in private memory; the WG lists are then merged pairwise in
// workgroup memory (log2(WG) rounds) and invocation 0 writes the result.
//
// Bindings:
//   0 params      { n_docs, dim, n_queries, k, id_offset }: the chunk's rows, the vector
//                 width, the batch size, the wanted k (1..=MAX_K) and the global id of row 0
//   1 docs        f32 [n_docs * dim], row-major: the index chunk
//   2 queries     f32 [n_queries * dim], row-major
//   3 out_ids     u32 [n_queries * k]: global document ids; 0xffffffff where fewer than k rows
//   4 out_scores  f32 [n_queries * k]: inner products; the lowest f32 where fewer than k rows
//
// Empty slots hold the lowest finite f32 with id 0xffffffff, which every real document ranks
// before (a constant -inf is not valid WGSL). Inputs are checked finite before launch.

struct Params {
    n_docs: u32,
    dim: u32,
    n_queries: u32,
    k: u32,
    id_offset: u32,
}

const WG: u32 = 64u;
const MAX_K: u32 = 32u;
const NO_ID: u32 = 0xffffffffu;
const LOWEST: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<storage, read> params: Params;
@group(0) @binding(1) var<storage, read> docs: array<f32>;
@group(0) @binding(2) var<storage, read> queries: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_scores: array<f32>;

// Each invocation's sorted list, published for the merge rounds: [WG * MAX_K].
var<workgroup> list_scores: array<f32, 2048>;
var<workgroup> list_ids: array<u32, 2048>;

fn ranks_before(score_a: f32, id_a: u32, score_b: f32, id_b: u32) -> bool {
    return score_a > score_b || (score_a == score_b && id_a < id_b);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let query = group.x;
    let me = local.x;
    let k = params.k;
    let dim = params.dim;

    var best_scores: array<f32, MAX_K>;
    var best_ids: array<u32, MAX_K>;
    for (var i = 0u; i < MAX_K; i++) {
        best_scores[i] = LOWEST;
        best_ids[i] = NO_ID;
    }

    if (query < params.n_queries) {
        let q = query * dim;
        for (var row = me; row < params.n_docs; row += WG) {
            var score = 0.0;
            let d = row * dim;
            for (var j = 0u; j < dim; j++) {
                score += queries[q + j] * docs[d + j];
            }
            let id = params.id_offset + row;
            if (ranks_before(score, id, best_scores[k - 1u], best_ids[k - 1u])) {
                // Insertion into the sorted list; the last entry falls off.
                var at = k - 1u;
                while (at > 0u && ranks_before(score, id, best_scores[at - 1u], best_ids[at - 1u])) {
                    best_scores[at] = best_scores[at - 1u];
                    best_ids[at] = best_ids[at - 1u];
                    at--;
                }
                best_scores[at] = score;
                best_ids[at] = id;
            }
        }
    }

    let base = me * MAX_K;
    for (var i = 0u; i < k; i++) {
        list_scores[base + i] = best_scores[i];
        list_ids[base + i] = best_ids[i];
    }
    workgroupBarrier();

    // Pairwise merges: in round `stride`, invocation me (a multiple of 2*stride) merges its
    // list with that of me + stride.
    for (var stride = 1u; stride < WG; stride *= 2u) {
        if (me % (2u * stride) == 0u) {
            let other = (me + stride) * MAX_K;
            var merged_scores: array<f32, MAX_K>;
            var merged_ids: array<u32, MAX_K>;
            var a = 0u;
            var b = 0u;
            for (var out = 0u; out < k; out++) {
                let sb = list_scores[other + b];
                let ib = list_ids[other + b];
                if (ranks_before(best_scores[a], best_ids[a], sb, ib)) {
                    merged_scores[out] = best_scores[a];
                    merged_ids[out] = best_ids[a];
                    a++;
                } else {
                    merged_scores[out] = sb;
                    merged_ids[out] = ib;
                    b++;
                }
            }
            for (var i = 0u; i < k; i++) {
                best_scores[i] = merged_scores[i];
                best_ids[i] = merged_ids[i];
                list_scores[base + i] = merged_scores[i];
                list_ids[base + i] = merged_ids[i];
            }
        }
        workgroupBarrier();
    }

    if (me == 0u && query < params.n_queries) {
        for (var i = 0u; i < k; i++) {
            out_scores[query * k + i] = best_scores[i];
            out_ids[query * k + i] = best_ids[i];
        }
    }
}
