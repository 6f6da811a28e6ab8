// Matmul for one token (m = 1), the decode path: memory-bound, so every weight byte is read once.
// One warp per weight row: lane j decodes groups j, j + 32, ... of eight values, multiplies them
// by the activations, and the warp adds its 32 partial sums with shuffles.

#define GEMV_ROWS 8

template <int T>
__device__ void gemv(const MatmulParams p, const u8* __restrict__ w, const u8* __restrict__ bias,
                     const float* __restrict__ x, float* __restrict__ out) {
    const u32 lane = threadIdx.x & 31u;
    const u64 row = (u64)blockIdx.x * GEMV_ROWS + (threadIdx.x >> 5);
    // The whole warp leaves together, so the shuffles below always see all 32 lanes.
    if (row >= p.n) {
        return;
    }
    const u8* wr = w + row * p.row_bytes;
    const u32 groups = (p.k + 7u) / 8u;
    float s = 0.0f;
    for (u32 g = lane; g < groups; g += 32u) {
        float v[8];
        load8<T>(wr, g, p.k, v);
#pragma unroll
        for (u32 i = 0; i < 8; ++i) {
            const u32 at = 8u * g + i;
            // Past `k` (a float row's last group) the activation is not read, so a NaN or an
            // infinity beyond the row cannot leak in.
            if (at < p.k) {
                s += v[i] * x[at];
            }
        }
    }
#pragma unroll
    for (u32 off = 16; off > 0; off >>= 1) {
        s += __shfl_down_sync(0xffffffffu, s, off);
    }
    if (lane == 0u) {
        out[row] = with_bias(s, bias, p.bias_kind, (u32)row);
    }
}

PER_WEIGHT_TYPE(gemv,
                (const MatmulParams p, const u8* __restrict__ w, const u8* __restrict__ bias,
                 const float* __restrict__ x, float* __restrict__ out),
                (p, w, bias, x, out))
