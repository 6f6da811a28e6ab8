// A whole weight as f32, out[r][i] = w[r][i]: one thread per group of eight values.

// `GatherParams` on the host (shared with embedding.cu's layout).
struct GatherParams {
    u32 rows;
    u32 k;
    // Groups of eight per row: (k + 7) / 8.
    u32 groups;
    u32 _pad;
    u64 row_bytes;
};

template <int T>
__device__ void dequant(const GatherParams p, const u8* __restrict__ w, float* __restrict__ out) {
    const u64 id = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 row = id / p.groups;
    const u32 g = (u32)(id % p.groups);
    if (row >= p.rows) {
        return;
    }
    float v[8];
    load8<T>(w + row * p.row_bytes, g, p.k, v);
    float* o = out + row * p.k + 8u * g;
    // Only a float row's last group ends early.
    const u32 count = min(8u, p.k - 8u * g);
    for (u32 i = 0; i < count; ++i) {
        o[i] = v[i];
    }
}

PER_WEIGHT_TYPE(dequant, (const GatherParams p, const u8* __restrict__ w, float* __restrict__ out),
                (p, w, out))
