// Rotary position embedding in place over `tokens` rows of `heads` heads of `head_dim` values.
// The cosines and sines (`cs[t][i] = (cos, sin)` of token t's angle for pair i) come from the host,
// computed in f64 as the CPU reference does, so positions far into the context stay exact.
struct Params { tokens: u32, heads: u32, head_dim: u32, half: u32, neox: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    let per_token = p.heads * p.half;
    if (id >= p.tokens * per_token) {
        return;
    }
    let t = id / per_token;
    let rest = id % per_token;
    let head = rest / p.half;
    let i = rest % p.half;
    let base = (t * p.heads + head) * p.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (p.neox != 0u) {
        a = base + i;
        b = base + i + p.half;
    }
    let c = cs[(t * p.half + i) * 2u];
    let s = cs[(t * p.half + i) * 2u + 1u];
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
