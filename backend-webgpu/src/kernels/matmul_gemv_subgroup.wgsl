// Matmul for one token (m = 1) reduced with subgroup operations: each subgroup takes whole rows,
// its lanes stride over a row's groups of eight values and `subgroupAdd` sums their partial sums,
// with no workgroup memory or barrier per row. Nothing is assumed about how invocations map to
// subgroups (their size, their order, whether they are full): a subgroup numbers itself with a
// workgroup counter, and its active lanes number themselves with a prefix sum.
//
// A workgroup covers `p.wg_rows` rows: the host sets 256 / the adapter's smallest subgroup, so
// each subgroup usually takes one row; fewer, larger subgroups loop over the rest.

var<workgroup> subgroups_seen: atomic<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lane = subgroupExclusiveAdd(1u);
    let lanes = subgroupAdd(1u);
    var seen = 0u;
    if (lane == 0u) {
        seen = atomicAdd(&subgroups_seen, 1u);
    }
    // Lane 0 is the lowest active invocation, the one `subgroupBroadcastFirst` reads.
    let sub = subgroupBroadcastFirst(seen);
    workgroupBarrier();
    let count = atomicLoad(&subgroups_seen);
    let first = (wg.x + wg.y * nwg.x) * p.wg_rows;
    let groups = (p.k + 7u) / 8u;
    // `r` is the same for every lane of the subgroup, so `subgroupAdd` sees all of them.
    for (var r = sub; r < p.wg_rows; r = r + count) {
        let row = first + r;
        if (row >= p.n) {
            break;
        }
        let base = row * p.row_bytes;
        var s = 0.0;
        for (var g = lane; g < groups; g = g + lanes) {
            let w = load8(base, g, p.k);
            s = s + dot(w.lo, x4(0u, 8u * g)) + dot(w.hi, x4(0u, 8u * g + 4u));
        }
        let total = subgroupAdd(s);
        if (lane == 0u) {
            put(0u, row, total);
        }
    }
}
