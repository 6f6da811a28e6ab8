// Softmax of each row of `cols` values, in place; one block per row. As on the CPU: subtract the
// row max (NaN if the row holds one), exp in f32, sum in f64, multiply by the f32 inverse.

// `RowsParams` on the host.
struct RowsParams {
    u32 rows;
    u32 cols;
};

extern "C" __global__ void softmax_f32(const RowsParams p, float* __restrict__ x) {
    __shared__ float maxes[ROW_THREADS / 32];
    __shared__ double scratch[ROW_THREADS / 32];
    float* row = x + (u64)blockIdx.x * p.cols;
    float m = NEG_INF;
    bool nan = false;
    for (u32 i = threadIdx.x; i < p.cols; i += blockDim.x) {
        const float v = row[i];
        nan = nan || v != v;
        m = fmaxf(m, v);
    }
    m = warp_max(m);
    if ((threadIdx.x & 31u) == 0u) {
        maxes[threadIdx.x >> 5] = m;
    }
    const bool any_nan = __syncthreads_or(nan);
    float row_max = NEG_INF;
#pragma unroll
    for (u32 i = 0; i < ROW_THREADS / 32; ++i) {
        row_max = fmaxf(row_max, maxes[i]);
    }
    if (any_nan) {
        row_max = __uint_as_float(0x7fc00000u);
    }
    double s = 0.0;
    for (u32 i = threadIdx.x; i < p.cols; i += blockDim.x) {
        const float e = expf(row[i] - row_max);
        row[i] = e;
        s += (double)e;
    }
    const float inv = (float)(1.0 / block_sum(s, scratch));
    for (u32 i = threadIdx.x; i < p.cols; i += blockDim.x) {
        row[i] *= inv;
    }
}
