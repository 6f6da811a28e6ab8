// Causal grouped-query attention over the KV cache (every earlier key, or a sliding window of the
// last `window`). A block of 64 threads takes one
// (token, head, split, slice of 256 output dims); query head h reads KV head h / group.
//
// Keys are visited in chunks of 64 with an online softmax, so nothing grows with the context:
// thread j scores key `base + j` (a full dot over head_dim), every thread then scans the chunk's
// 64 scores in the same order (so the running max `m` and sum `l` are identical in every thread and
// need no reduction), and thread i accumulates output dims i, i + 64, i + 128, i + 192 of the slice
// in registers. Head dims past 256 take further slices, which recompute the scores.
//
// Long contexts split along the sequence (`splits` > 1, for decoding, where tokens x heads alone
// would leave most of the GPU idle): split s takes keys [s * chunk, (s + 1) * chunk), writes its
// unnormalised sums and its (m, l) to scratch, and attention_combine_f32 merges the splits.
//
// NaN follows the CPU op: the max skips NaN scores (`x > m` is false for NaN), a NaN score makes
// its weight and so the sum NaN, and a NaN value poisons only its own dim.

// `AttentionParams` on the host.
struct AttentionParams {
    u32 tokens;
    u32 pos0;
    u32 heads;
    // heads / kv_heads.
    u32 group;
    u32 head_dim;
    u32 slices;
    u32 splits;
    // Keys per split (a multiple of 64).
    u32 chunk;
    float scale;
    // Keys each query sees at most (a sliding window), 0 for all.
    u32 window;
    // Values per row of q/out (heads * head_dim) and of the caches (kv_heads * head_dim).
    u64 q_row;
    u64 kv_row;
};

#define ATT_THREADS 64
#define ATT_PER 4
#define ATT_SLICE 256

extern "C" __global__ void attention_f32(const AttentionParams p, const float* __restrict__ q,
                                         const float* __restrict__ k, const float* __restrict__ v,
                                         float* __restrict__ out, float* __restrict__ part_acc,
                                         float* __restrict__ part_ml) {
    __shared__ float scores[ATT_THREADS];
    __shared__ float weights[ATT_THREADS];
    const u64 unit = blockIdx.x;
    const u32 slice = (u32)(unit % p.slices);
    const u64 ths = unit / p.slices;
    const u32 split = (u32)(ths % p.splits);
    const u64 th = ths / p.splits;
    const u64 t = th / p.heads;
    const u32 h = (u32)(th % p.heads);
    // `q` and `out` share the layout [token][head][dim].
    const u64 q_base = t * p.q_row + (u64)h * p.head_dim;
    const u64 kv_off = (u64)(h / p.group) * p.head_dim;
    const u32 keys = p.pos0 + (u32)t + 1u;
    // A sliding window starts at key keys - window; a split wholly before it sums nothing.
    const u32 first = (p.window != 0u && keys > p.window) ? keys - p.window : 0u;
    const u32 begin = max(split * p.chunk, first);
    const u32 end = min(keys, begin + p.chunk);
    const u32 d0 = slice * ATT_SLICE + threadIdx.x;

    float acc[ATT_PER] = {0.0f, 0.0f, 0.0f, 0.0f};
    // The lowest finite f32 rather than -inf: every finite score exceeds it, and with only -inf or
    // NaN scores the sum stays 0 or NaN and the output NaN, as the CPU's exp(-inf - -inf) gives.
    float m = -3.4028235e38f;
    float l = 0.0f;
    for (u32 base = begin; base < end; base += ATT_THREADS) {
        const u32 j = base + threadIdx.x;
        const bool valid = j < end;
        float s = 0.0f;
        if (valid) {
            const float* kr = k + (u64)j * p.kv_row + kv_off;
            float d = 0.0f;
            for (u32 i = 0; i < p.head_dim; ++i) {
                d += q[q_base + i] * kr[i];
            }
            s = d * p.scale;
        }
        scores[threadIdx.x] = s;
        __syncthreads();

        const u32 n = min((u32)ATT_THREADS, end - base);
        float cm = m;
        for (u32 i = 0; i < n; ++i) {
            const float x = scores[i];
            if (x > cm) {
                cm = x;
            }
        }
        weights[threadIdx.x] = valid ? expf(s - cm) : 0.0f;
        __syncthreads();

        // Rescales what earlier chunks summed under the old max.
        const float alpha = expf(m - cm);
        m = cm;
        float sum = 0.0f;
#pragma unroll
        for (u32 r = 0; r < ATT_PER; ++r) {
            acc[r] *= alpha;
        }
        for (u32 i = 0; i < n; ++i) {
            const float wi = weights[i];
            sum += wi;
            const float* vr = v + (u64)(base + i) * p.kv_row + kv_off;
#pragma unroll
            for (u32 r = 0; r < ATT_PER; ++r) {
                const u32 d = d0 + r * ATT_THREADS;
                if (d < p.head_dim) {
                    acc[r] += wi * vr[d];
                }
            }
        }
        l = l * alpha + sum;
        // The next chunk writes `scores` only after every thread has passed the barrier above,
        // and `weights` only after its next scores barrier: no third barrier needed.
        __syncthreads();
    }

    if (p.splits == 1u) {
        const float inv = 1.0f / l;
#pragma unroll
        for (u32 r = 0; r < ATT_PER; ++r) {
            const u32 d = d0 + r * ATT_THREADS;
            if (d < p.head_dim) {
                out[q_base + d] = acc[r] * inv;
            }
        }
        return;
    }
    // Partial results, indexed by (token·heads + head)·splits + split.
    const u64 part = th * p.splits + split;
#pragma unroll
    for (u32 r = 0; r < ATT_PER; ++r) {
        const u32 d = d0 + r * ATT_THREADS;
        if (d < p.head_dim) {
            part_acc[part * p.head_dim + d] = acc[r];
        }
    }
    if (slice == 0u && threadIdx.x == 0u) {
        part_ml[2u * part] = m;
        part_ml[2u * part + 1u] = l;
    }
}

// Merges the splits of one (token, head): out = sum_s acc_s * e_s / sum_s l_s * e_s with
// e_s = exp(m_s - M), M the largest m_s. An empty split (past the token's causal end) has l = 0 and
// acc = 0 and adds nothing. One block per (token, head), threads over the head's dims.
extern "C" __global__ void attention_combine_f32(const AttentionParams p,
                                                 const float* __restrict__ part_acc,
                                                 const float* __restrict__ part_ml,
                                                 float* __restrict__ out) {
    const u64 th = blockIdx.x;
    const u64 t = th / p.heads;
    const u32 h = (u32)(th % p.heads);
    const u64 first = th * p.splits;
    float big = -3.4028235e38f;
    for (u32 s = 0; s < p.splits; ++s) {
        const float ms = part_ml[2u * (first + s)];
        if (ms > big) {
            big = ms;
        }
    }
    float l = 0.0f;
    for (u32 s = 0; s < p.splits; ++s) {
        l += part_ml[2u * (first + s) + 1u] * expf(part_ml[2u * (first + s)] - big);
    }
    const float inv = 1.0f / l;
    const u64 q_base = t * p.q_row + (u64)h * p.head_dim;
    for (u32 d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
        float a = 0.0f;
        for (u32 s = 0; s < p.splits; ++s) {
            a += part_acc[(first + s) * p.head_dim + d] * expf(part_ml[2u * (first + s)] - big);
        }
        out[q_base + d] = a * inv;
    }
}
