// out[r] = x[r] * (1 / sqrt(mean(x[r]^2) + eps)) * w, one block per row. As on the CPU, the sum of
// squares is accumulated in f64 and the scale rounded to f32 once.

// `RmsNormParams` on the host.
struct RmsNormParams {
    u32 rows;
    u32 dim;
    float eps;
    u32 _pad;
};

template <int T>
__device__ void rms_norm(const RmsNormParams p, const float* __restrict__ x,
                         const u8* __restrict__ w, float* __restrict__ out) {
    __shared__ double scratch[ROW_THREADS / 32];
    const u64 base = (u64)blockIdx.x * p.dim;
    double s = 0.0;
    for (u32 i = threadIdx.x; i < p.dim; i += blockDim.x) {
        const double v = (double)x[base + i];
        s += v * v;
    }
    const double sum = block_sum(s, scratch);
    const float scale = (float)(1.0 / sqrt(sum / (double)p.dim + (double)p.eps));
    for (u32 i = threadIdx.x; i < p.dim; i += blockDim.x) {
        float wv;
        if constexpr (T == T_F16) {
            wv = f16_to_f32(((const u16*)w)[i]);
        } else {
            wv = ((const float*)w)[i];
        }
        out[base + i] = x[base + i] * scale * wv;
    }
}

extern "C" __global__ void rms_norm_f32(const RmsNormParams p, const float* __restrict__ x,
                                        const u8* __restrict__ w, float* __restrict__ out) {
    rms_norm<T_F32>(p, x, w, out);
}

extern "C" __global__ void rms_norm_f16(const RmsNormParams p, const float* __restrict__ x,
                                        const u8* __restrict__ w, float* __restrict__ out) {
    rms_norm<T_F16>(p, x, w, out);
}
