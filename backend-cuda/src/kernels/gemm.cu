// Matmul for several tokens (m > 1), the prefill path: a block of 256 threads computes a tile of
// TILE_N weight rows x TILE_M tokens. Per CHUNK values of k it decodes the tile's weights once into
// shared memory (each thread one group of eight) and stages the tokens' activations beside them;
// every decoded value is then reused by all TILE_M tokens. Each thread accumulates 4 rows of one
// token. blockIdx.x walks tiles along n, blockIdx.y tiles along m.

#define TILE_N 64
#define TILE_M 16
#define CHUNK 32
// Row pitch of the staged tiles: CHUNK + 1, so threads reading one column of different rows hit
// different shared-memory banks.
#define PITCH 33

template <int T>
__device__ void gemm(const MatmulParams p, const u8* __restrict__ w, const u8* __restrict__ bias,
                     const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float wt[TILE_N * PITCH];
    __shared__ float xt[TILE_M * PITCH];
    const u32 tid = threadIdx.x;
    const u32 row0 = blockIdx.x * TILE_N;
    const u32 tok0 = blockIdx.y * TILE_M;
    // This thread's outputs: token `tok`, rows quad + 16 * i.
    const u32 tok = tid % TILE_M;
    const u32 quad = tid / TILE_M;
    // This thread's decoding job: group `dgrp` of row `drow` in each chunk.
    const u32 drow = tid / 4u;
    const u32 dgrp = tid % 4u;
    const u32 wrow = row0 + drow;
    const u8* wr = w + (u64)wrow * p.row_bytes;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (u32 k0 = 0; k0 < p.k; k0 += CHUNK) {
        const u32 g = k0 / 8u + dgrp;
        float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        if (wrow < p.n && 8u * g < p.k) {
            load8<T>(wr, g, p.k, v);
        }
#pragma unroll
        for (u32 i = 0; i < 8; ++i) {
            wt[drow * PITCH + 8u * dgrp + i] = v[i];
        }
        for (u32 i = tid; i < TILE_M * CHUNK; i += blockDim.x) {
            const u32 tt = i / CHUNK;
            const u32 kk = i % CHUNK;
            // Zero past `k` and past the last token, matching the zeros `load8` gives there.
            float xv = 0.0f;
            if (tok0 + tt < p.m && k0 + kk < p.k) {
                xv = x[(u64)(tok0 + tt) * p.k + k0 + kk];
            }
            xt[tt * PITCH + kk] = xv;
        }
        __syncthreads();
#pragma unroll 8
        for (u32 kk = 0; kk < CHUNK; ++kk) {
            const float xv = xt[tok * PITCH + kk];
#pragma unroll
            for (u32 i = 0; i < 4; ++i) {
                acc[i] += xv * wt[(quad + 16u * i) * PITCH + kk];
            }
        }
        __syncthreads();
    }
    const u32 token = tok0 + tok;
    if (token < p.m) {
#pragma unroll
        for (u32 i = 0; i < 4; ++i) {
            const u32 row = row0 + quad + 16u * i;
            if (row < p.n) {
                out[(u64)token * p.n + row] = with_bias(acc[i], bias, p.bias_kind, row);
            }
        }
    }
}

PER_WEIGHT_TYPE(gemm,
                (const MatmulParams p, const u8* __restrict__ w, const u8* __restrict__ bias,
                 const float* __restrict__ x, float* __restrict__ out),
                (p, w, bias, x, out))
