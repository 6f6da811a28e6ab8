// Matmul for one token (m = 1): memory-bound, so each weight byte is read once and threads split
// the row. A workgroup takes GEMV_ROWS rows; each row's GEMV_THREADS threads take every
// GEMV_THREADS-th group of eight values, then add their partial sums in workgroup memory.
const GEMV_ROWS: u32 = 4u;
const GEMV_THREADS: u32 = 64u;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let slot = lid.x / GEMV_THREADS;
    let t = lid.x % GEMV_THREADS;
    let row = (wg.x + wg.y * nwg.x) * GEMV_ROWS + slot;
    // Threads of rows past n still take part in the reduction: barriers need the whole workgroup.
    var s = 0.0;
    if (row < p.n) {
        let base = row * p.row_bytes;
        let groups = (p.k + 7u) / 8u;
        for (var g = t; g < groups; g = g + GEMV_THREADS) {
            let w = load8(base, g, p.k);
            s = s + dot(w.lo, x4(0u, 8u * g)) + dot(w.hi, x4(0u, 8u * g + 4u));
        }
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var stride = GEMV_THREADS / 2u; stride > 0u; stride = stride >> 1u) {
        if (t < stride) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + stride];
        }
        workgroupBarrier();
    }
    if (t == 0u && row < p.n) {
        put(0u, row, partial[lid.x]);
    }
}
