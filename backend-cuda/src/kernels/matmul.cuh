// Shared by gemv.cu and gemm.cu: their parameters and the bias. out[t][r] = sum_i x[t][i] * w[r][i]
// (+ bias[r]); sums are f32 and the bias is added last, as the CPU does.

// `MatmulParams` on the host.
struct MatmulParams {
    u32 m;
    u32 n;
    u32 k;
    // 0: no bias, 1: f32, 2: f16.
    u32 bias_kind;
    // Bytes of one weight row.
    u64 row_bytes;
};

// Without a bias `bias` points at the weight and is never read.
__device__ __forceinline__ float with_bias(float s, const u8* bias, u32 kind, u32 row) {
    if (kind == 1u) {
        return s + ((const float*)bias)[row];
    }
    if (kind == 2u) {
        return s + f16_to_f32(((const u16*)bias)[row]);
    }
    return s;
}
