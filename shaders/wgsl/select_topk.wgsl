// Exact top-k selection over precomputed scores, for any k up to the row length (REALM
// fine-tunes with a 5,000-document retriever beam): one workgroup per query finds the k-th
// largest score by a four-round radix select on order-preserving keys, then writes every
// score above it and, of the scores equal to it, those with the lowest ids, so the set
// matches the project's order (higher score first, then lower id). The k hits come out
// unsorted; the caller sorts them (k values, not n).
//
// Bindings:
//   0 params      { n, n_queries, k, id_offset }: scores per query (the chunk's rows), the
//                 batch size, the wanted k (1..=n) and the global id of row 0
//   1 scores      f32 [n_queries * n], row-major by query
//   2 out_ids     u32 [n_queries * k]
//   3 out_scores  f32 [n_queries * k]
//
// Dispatch: (n_queries, 1, 1) workgroups.

struct Params {
    n: u32,
    n_queries: u32,
    k: u32,
    id_offset: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> params: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_scores: array<f32>;

var<workgroup> histogram: array<atomic<u32>, 256>;
var<workgroup> greater_before: array<u32, 256>;
var<workgroup> ties_before: array<u32, 256>;
var<workgroup> shared_prefix: u32;
var<workgroup> shared_remaining: u32;

// A u32 that orders like the f32 (total order: -0 below +0).
fn key(score: f32) -> u32 {
    let bits = bitcast<u32>(score);
    if ((bits >> 31u) == 1u) {
        return ~bits;
    }
    return bits | 0x80000000u;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let query = group.x;
    let me = local.x;
    let n = params.n;
    let k = params.k;
    let base = query * n;

    if (me == 0u) {
        shared_prefix = 0u;
        shared_remaining = k;
    }
    // Radix select, most significant byte first: after round r the top 8(r+1) bits of the
    // k-th largest key are known, and `remaining` counts how many of the keys sharing those
    // bits still belong to the top k.
    var mask = 0u;
    for (var round = 0u; round < 4u; round++) {
        let shift = 24u - 8u * round;
        atomicStore(&histogram[me], 0u);
        let prefix = workgroupUniformLoad(&shared_prefix);
        for (var i = me; i < n; i += WG) {
            let kk = key(scores[base + i]);
            if ((kk & mask) == prefix) {
                atomicAdd(&histogram[(kk >> shift) & 0xffu], 1u);
            }
        }
        workgroupBarrier();
        if (me == 0u) {
            var remaining = shared_remaining;
            var digit = 255u;
            loop {
                let count = atomicLoad(&histogram[digit]);
                if (count >= remaining || digit == 0u) {
                    break;
                }
                remaining -= count;
                digit -= 1u;
            }
            shared_prefix = prefix | (digit << shift);
            shared_remaining = remaining;
        }
        mask = mask | (0xffu << shift);
        workgroupBarrier();
    }
    let threshold = workgroupUniformLoad(&shared_prefix);
    let ties_wanted = workgroupUniformLoad(&shared_remaining);

    // Each invocation owns a contiguous run of rows, so ranks among ties follow row order.
    let span = (n + WG - 1u) / WG;
    let first = min(n, me * span);
    let last = min(n, first + span);
    var greater = 0u;
    var ties = 0u;
    for (var i = first; i < last; i++) {
        let kk = key(scores[base + i]);
        greater += select(0u, 1u, kk > threshold);
        ties += select(0u, 1u, kk == threshold);
    }
    greater_before[me] = greater;
    ties_before[me] = ties;
    workgroupBarrier();
    if (me == 0u) {
        var g = 0u;
        var t = 0u;
        for (var i = 0u; i < WG; i++) {
            let gi = greater_before[i];
            let ti = ties_before[i];
            greater_before[i] = g;
            ties_before[i] = t;
            g += gi;
            t += ti;
        }
    }
    workgroupBarrier();
    var g_at = greater_before[me];
    var t_at = ties_before[me];
    let out = query * k;
    let ties_start = k - ties_wanted;
    for (var i = first; i < last; i++) {
        let score = scores[base + i];
        let kk = key(score);
        if (kk > threshold) {
            out_ids[out + g_at] = params.id_offset + i;
            out_scores[out + g_at] = score;
            g_at++;
        } else if (kk == threshold && t_at < ties_wanted) {
            out_ids[out + ties_start + t_at] = params.id_offset + i;
            out_scores[out + ties_start + t_at] = score;
            t_at++;
        }
    }
}
