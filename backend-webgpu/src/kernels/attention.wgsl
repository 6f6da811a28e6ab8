// Causal grouped-query attention, one workgroup per (token, head, slice of 256 output dims), over
// every earlier key or a sliding window of the last `window`.
//
// Keys are visited in chunks of 64 with an online softmax, so no workgroup array grows with the
// context: thread j scores key `base + j` (a full dot over head_dim), every thread then scans the
// chunk's 64 scores in the same order (so the running max `m` and sum `l` are identical in every
// thread and need no reduction), and thread i accumulates output dims i, i+64, i+128, i+192 of the
// slice in registers. Head dims past 256 take further slices, which recompute the scores.
//
// NaN follows the CPU op: the max skips NaN scores (`x > m` is false for NaN, as `f32::max` skips
// it), a NaN score makes its weight and so the sum NaN, and a NaN value poisons only its own dim.
struct Params {
    tokens: u32, pos0: u32, heads: u32, group: u32,
    head_dim: u32, q_row: u32, kv_row: u32, slices: u32,
    scale: f32, window: u32, _b: u32, _c: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
// Output dims per thread; WG * PER dims per slice.
const PER: u32 = 4u;
const SLICE: u32 = 256u;

// Scores of the chunk, then (in a second array, so the writes need no extra barrier) weights.
var<workgroup> scores: array<f32, 64>;
var<workgroup> weights: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let unit = wg.x + wg.y * nwg.x;
    if (unit >= p.tokens * p.heads * p.slices) {
        return;
    }
    let slice = unit % p.slices;
    let th = unit / p.slices;
    let t = th / p.heads;
    let h = th % p.heads;
    // `q` and `out` share the layout [token][head][dim].
    let q_base = t * p.q_row + h * p.head_dim;
    let kv_off = (h / p.group) * p.head_dim;
    let keys = p.pos0 + t + 1u;
    // A sliding window (window > 0) starts at key keys - window.
    let first = select(0u, keys - p.window, p.window != 0u && keys > p.window);
    let d0 = slice * SLICE + lid.x;

    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    // The lowest finite f32 rather than -inf (which WGSL cannot spell): every finite score
    // exceeds it, and with only -inf or NaN scores the sum stays 0 or NaN and the output NaN, as
    // the CPU's exp(-inf - -inf) gives.
    var m = -3.4028234663852886e38; // -f32::MAX exactly (Tint rejects -3.4028235e38 as out of range)
    var l = 0.0;
    for (var base = first; base < keys; base = base + WG) {
        let j = base + lid.x;
        let valid = j < keys;
        var s = 0.0;
        if (valid) {
            let kb = j * p.kv_row + kv_off;
            var d = 0.0;
            for (var i = 0u; i < p.head_dim; i = i + 1u) {
                d = d + q[q_base + i] * k[kb + i];
            }
            s = d * p.scale;
        }
        scores[lid.x] = s;
        workgroupBarrier();

        let n = min(WG, keys - base);
        var cm = m;
        for (var i = 0u; i < n; i = i + 1u) {
            let x = scores[i];
            if (x > cm) {
                cm = x;
            }
        }
        var e = 0.0;
        if (valid) {
            e = exp(s - cm);
        }
        weights[lid.x] = e;
        workgroupBarrier();

        // Rescales what earlier chunks summed under the old max.
        let alpha = exp(m - cm);
        m = cm;
        var sum = 0.0;
        for (var r = 0u; r < PER; r = r + 1u) {
            acc[r] = acc[r] * alpha;
        }
        for (var i = 0u; i < n; i = i + 1u) {
            let wi = weights[i];
            sum = sum + wi;
            let vb = (base + i) * p.kv_row + kv_off;
            for (var r = 0u; r < PER; r = r + 1u) {
                let d = d0 + r * WG;
                if (d < p.head_dim) {
                    acc[r] = acc[r] + wi * v[vb + d];
                }
            }
        }
        l = l * alpha + sum;
        // The next chunk overwrites `scores` only after every thread has passed the barrier
        // above, and `weights` only after its next scores barrier: no third barrier needed.
    }

    let inv = 1.0 / l;
    for (var r = 0u; r < PER; r = r + 1u) {
        let d = d0 + r * WG;
        if (d < p.head_dim) {
            out[q_base + d] = acc[r] * inv;
        }
    }
}
