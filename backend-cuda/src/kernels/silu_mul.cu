// out[i] = silu(gate[i]) * up[i] with silu(g) = g / (1 + exp(-g)), the CPU's f32 expression:
// one thread per value.
extern "C" __global__ void silu_mul_f32(const u64 len, const float* __restrict__ gate,
                                        const float* __restrict__ up, float* __restrict__ out) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// out[i] = gelu(gate[i]) * up[i] with GELU's tanh form, the CPU's f32 expression.
extern "C" __global__ void gelu_mul_f32(const u64 len, const float* __restrict__ gate,
                                        const float* __restrict__ up, float* __restrict__ out) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        const float g = gate[i];
        out[i] = 0.5f * g * (1.0f + tanhf(0.7978846f * (g + 0.044715f * g * g * g))) * up[i];
    }
}
