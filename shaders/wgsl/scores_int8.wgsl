// Relevance scores against an int8 index chunk: every document row is int8 with one scale,
// every query is quantised the same way on the CPU before upload, and
//   score = f32(q . d) * (query_scale * doc_scale)
// with the dot product summed exactly in i32, so the scores equal the CPU int8 path's bit
// for bit (realm_core::quantized).
//
// Bindings:
//   0 params        { n_queries, n_docs, words }: words = ceil(dim / 4) u32s per row
//   1 docs          u32 [n_docs * words]: four int8 values per word, lowest byte first,
//                   a row's last word padded with zeros
//   2 doc_scales    f32 [n_docs]
//   3 queries       u32 [n_queries * words], packed like docs
//   4 query_scales  f32 [n_queries]
//   5 scores        f32 [n_queries * n_docs], row-major by query
//
// Dispatch: (ceil(n_docs / 64), n_queries, 1) workgroups; one invocation per (query, doc).

struct Params {
    n_queries: u32,
    n_docs: u32,
    words: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
@group(0) @binding(1) var<storage, read> docs: array<u32>;
@group(0) @binding(2) var<storage, read> doc_scales: array<f32>;
@group(0) @binding(3) var<storage, read> queries: array<u32>;
@group(0) @binding(4) var<storage, read> query_scales: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;

// The four signed bytes of a word, lowest first, sign-extended by arithmetic shifts.
fn unpack(w: u32) -> vec4<i32> {
    let s = bitcast<i32>(w);
    return vec4<i32>((s << 24u) >> 24u, (s << 16u) >> 24u, (s << 8u) >> 24u, s >> 24u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let doc = id.x;
    let query = id.y;
    if (doc >= params.n_docs || query >= params.n_queries) {
        return;
    }
    let words = params.words;
    var acc = 0i;
    for (var w = 0u; w < words; w++) {
        let p = unpack(queries[query * words + w]) * unpack(docs[doc * words + w]);
        acc += p.x + p.y + p.z + p.w;
    }
    scores[query * params.n_docs + doc] = f32(acc) * (query_scales[query] * doc_scales[doc]);
}
