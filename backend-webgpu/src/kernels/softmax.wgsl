// Softmax of each row of `cols` values, in place; one workgroup per row.
struct Params { rows: u32, cols: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var m = -3.4028234663852886e38; // -f32::MAX exactly (Tint rejects -3.4028235e38 as out of range)
    for (var i = lid.x; i < p.cols; i = i + 256u) {
        m = max(m, x[base + i]);
    }
    partial[lid.x] = m;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        if (lid.x < stride) {
            partial[lid.x] = max(partial[lid.x], partial[lid.x + stride]);
        }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();
    var s = 0.0;
    for (var i = lid.x; i < p.cols; i = i + 256u) {
        let e = exp(x[base + i] - row_max);
        x[base + i] = e;
        s = s + e;
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        if (lid.x < stride) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / partial[0];
    for (var i = lid.x; i < p.cols; i = i + 256u) {
        x[base + i] = x[base + i] * inv;
    }
}
