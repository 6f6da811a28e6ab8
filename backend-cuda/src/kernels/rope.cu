// Rotary position embedding in place over `tokens` rows of `heads` heads of `head_dim` values: one
// thread per rotated pair. The cosines and sines (`cs[t][i] = (cos, sin)` of token t's angle for
// pair i) come from the host in f64, and the rotation is done in f64 and rounded once, exactly as
// the CPU reference does it. The products and sums are written as `__dmul_rn` / `__dadd_rn` /
// `__dsub_rn`, which NVRTC never contracts into an fma (its default `--fmad=true` would fuse
// `x0 * c - x1 * s`, rounding differently from the CPU's separate multiply and subtract).

// `RopeParams` on the host.
struct RopeParams {
    u32 tokens;
    u32 heads;
    u32 head_dim;
    // rope_dim / 2: pairs per head.
    u32 half;
    // 1: NeoX pairs (i, i + half); 0: adjacent pairs (2i, 2i + 1).
    u32 neox;
    u32 _pad;
};

extern "C" __global__ void rope_f32(const RopeParams p, float* __restrict__ x,
                                    const double* __restrict__ cs) {
    const u64 id = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 per_token = (u64)p.heads * p.half;
    if (id >= (u64)p.tokens * per_token) {
        return;
    }
    const u64 t = id / per_token;
    const u64 rest = id % per_token;
    const u64 head = rest / p.half;
    const u64 i = rest % p.half;
    const u64 base = (t * p.heads + head) * p.head_dim;
    const u64 a = p.neox ? base + i : base + 2u * i;
    const u64 b = p.neox ? base + i + p.half : a + 1u;
    const double c = cs[(t * p.half + i) * 2u];
    const double s = cs[(t * p.half + i) * 2u + 1u];
    const double x0 = (double)x[a];
    const double x1 = (double)x[b];
    x[a] = (float)__dsub_rn(__dmul_rn(x0, c), __dmul_rn(x1, s));
    x[b] = (float)__dadd_rn(__dmul_rn(x0, s), __dmul_rn(x1, c));
}
