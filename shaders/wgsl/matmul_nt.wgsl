// Tiled matrix product C = A . B^T, the relevance scores of a batch of queries against an
// index chunk (A = queries, B = documents) and the shape of every BERT linear layer (x W^T).
//
// Each 16x16 workgroup computes a 16x16 tile of C. The shared dimension is walked 16 at a
// time: the workgroup stages a 16x16 tile of A and of B in workgroup memory, then every
// invocation accumulates its element from the staged tiles, in index order.
//
// Bindings:
//   0 params  { m, n, kd }: rows of A, rows of B, the shared width
//   1 a       f32 [m * kd], row-major
//   2 b       f32 [n * kd], row-major
//   3 c       f32 [m * n], row-major: c[i * n + j] = sum_t a[i * kd + t] * b[j * kd + t]
//
// Dispatch: (ceil(n / 16), ceil(m / 16), 1) workgroups.

struct Params {
    m: u32,
    n: u32,
    kd: u32,
}

const T: u32 = 16u;

@group(0) @binding(0) var<storage, read> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// tile_a[r][t]: A[tile row r, shared t]; tile_b[r][t]: B[tile row r, shared t].
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let m = params.m;
    let n = params.n;
    let kd = params.kd;
    let row = group.y * T + local.y; // row of A and of C
    let col = group.x * T + local.x; // row of B, column of C
    let b_row = group.x * T + local.y; // the B row this invocation stages
    var acc = 0.0;
    for (var t0 = 0u; t0 < kd; t0 += T) {
        let t = t0 + local.x;
        var va = 0.0;
        if (row < m && t < kd) {
            va = a[row * kd + t];
        }
        var vb = 0.0;
        if (b_row < n && t < kd) {
            vb = b[b_row * kd + t];
        }
        tile_a[local.y][local.x] = va;
        tile_b[local.y][local.x] = vb;
        workgroupBarrier();
        let width = min(T, kd - t0);
        for (var j = 0u; j < width; j++) {
            acc += tile_a[local.y][j] * tile_b[local.x][j];
        }
        workgroupBarrier();
    }
    if (row < m && col < n) {
        c[row * n + col] = acc;
    }
}
