// Index of the largest value of each row (the first one on ties, NaN skipped, as the CPU's
// argmax); one block per row. Only the ids go back to the host, not the logits.

// `RowsParams` on the host.
struct RowsParams {
    u32 rows;
    u32 cols;
};

// Whether candidate (v, i) beats (bv, bi): larger, or equal and earlier; no index loses to any.
__device__ __forceinline__ bool better(float v, u32 i, float bv, u32 bi) {
    if (i == 0xffffffffu) {
        return false;
    }
    return bi == 0xffffffffu || v > bv || (v == bv && i < bi);
}

extern "C" __global__ void argmax_f32(const RowsParams p, const float* __restrict__ x,
                                      u32* __restrict__ out) {
    __shared__ float best_v[ROW_THREADS / 32];
    __shared__ u32 best_i[ROW_THREADS / 32];
    const float* row = x + (u64)blockIdx.x * p.cols;
    float bv = NEG_INF;
    u32 bi = 0xffffffffu;
    // Each thread walks upwards, so strictly greater keeps its first index.
    for (u32 i = threadIdx.x; i < p.cols; i += blockDim.x) {
        const float v = row[i];
        if (v == v && (bi == 0xffffffffu || v > bv)) {
            bv = v;
            bi = i;
        }
    }
#pragma unroll
    for (u32 off = 16; off > 0; off >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
        const u32 oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if ((threadIdx.x & 31u) == 0u) {
        best_v[threadIdx.x >> 5] = bv;
        best_i[threadIdx.x >> 5] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0u) {
        for (u32 w = 1; w < ROW_THREADS / 32; ++w) {
            if (better(best_v[w], best_i[w], bv, bi)) {
                bv = best_v[w];
                bi = best_i[w];
            }
        }
        // A row of only NaN: the CPU gives index 0.
        out[blockIdx.x] = bi == 0xffffffffu ? 0u : bi;
    }
}
