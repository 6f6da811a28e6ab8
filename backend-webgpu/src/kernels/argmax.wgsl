// Index of the largest value of each row (the first on ties); one workgroup per row.
struct Params { rows: u32, cols: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var bv = -3.4028234663852886e38; // -f32::MAX exactly (Tint rejects -3.4028235e38 as out of range)
    var bi = 0xffffffffu;
    for (var i = lid.x; i < p.cols; i = i + 256u) {
        let v = x[base + i];
        // Strictly greater keeps the first index (each thread walks upwards); NaN is skipped.
        if (v == v && (bi == 0xffffffffu || v > bv)) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid.x] = bv;
    best_i[lid.x] = bi;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        if (lid.x < stride) {
            let ov = best_v[lid.x + stride];
            let oi = best_i[lid.x + stride];
            let mi = best_i[lid.x];
            if (oi != 0xffffffffu && (mi == 0xffffffffu || ov > best_v[lid.x] ||
                (ov == best_v[lid.x] && oi < mi))) {
                best_v[lid.x] = ov;
                best_i[lid.x] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[row] = best_i[0];
    }
}
