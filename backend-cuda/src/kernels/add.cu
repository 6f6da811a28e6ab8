// acc[i] += x[i] over `len` values (residual connections): one thread per value.
extern "C" __global__ void add_f32(const u64 len, float* __restrict__ acc,
                                   const float* __restrict__ x) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        acc[i] += x[i];
    }
}

// x[i] *= factor over `len` values (Gemma's embedding scale): one thread per value.
extern "C" __global__ void scale_f32(const u64 len, float* __restrict__ x, const float factor) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        x[i] *= factor;
    }
}
