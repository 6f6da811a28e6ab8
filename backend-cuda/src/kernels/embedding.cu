// Rows `ids` of a table as f32, out[j][i] = w[ids[j]][i]: one thread per group of eight values.
// The host has checked every id against the table's rows.

// `GatherParams` on the host: `rows` is the number of ids here.
struct GatherParams {
    u32 rows;
    u32 k;
    u32 groups;
    u32 _pad;
    u64 row_bytes;
};

template <int T>
__device__ void embedding(const GatherParams p, const u8* __restrict__ w,
                          const u32* __restrict__ ids, float* __restrict__ out) {
    const u64 id = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 j = id / p.groups;
    const u32 g = (u32)(id % p.groups);
    if (j >= p.rows) {
        return;
    }
    float v[8];
    load8<T>(w + (u64)ids[j] * p.row_bytes, g, p.k, v);
    float* o = out + j * p.k + 8u * g;
    const u32 count = min(8u, p.k - 8u * g);
    for (u32 i = 0; i < count; ++i) {
        o[i] = v[i];
    }
}

PER_WEIGHT_TYPE(embedding,
                (const GatherParams p, const u8* __restrict__ w, const u32* __restrict__ ids,
                 float* __restrict__ out),
                (p, w, ids, out))
