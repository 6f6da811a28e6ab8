// Rows `ids` of a table as f32: one thread per group of eight values, out[j][i] = w[ids[j]][i].
// The host has checked every id against the table's rows. `W` holds one part of the table, rows
// row0..row0+part_rows; ids outside it are another dispatch's.
struct Params { count: u32, k: u32, row_bytes: u32, groups: u32, row0: u32, part_rows: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = (wg.x + wg.y * nwg.x) * 256u + lid.x;
    let j = id / p.groups;
    let g = id % p.groups;
    if (j >= p.count) {
        return;
    }
    let row = ids[j];
    if (row < p.row0 || row - p.row0 >= p.part_rows) {
        return;
    }
    let v = load8((row - p.row0) * p.row_bytes, g, p.k);
    let at = j * p.k + 8u * g;
    // Only a float row's last group ends early.
    let count = min(8u, p.k - 8u * g);
    for (var i = 0u; i < count; i = i + 1u) {
        out[at + i] = select(v.hi[i & 3u], v.lo[i & 3u], i < 4u);
    }
}
