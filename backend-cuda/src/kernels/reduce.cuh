// Block-wide reductions for the row kernels (rms_norm, softmax): blocks of `ROW_THREADS` threads,
// a warp shuffle then one value per warp through shared memory. Every thread gets the result.

#define ROW_THREADS 256

template <typename F>
__device__ __forceinline__ F warp_sum(F v) {
#pragma unroll
    for (u32 off = 16; off > 0; off >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, off);
    }
    return v;
}

template <typename F>
__device__ __forceinline__ F warp_max(F v) {
#pragma unroll
    for (u32 off = 16; off > 0; off >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    }
    return v;
}

// The sum of `v` over the block; `scratch` holds ROW_THREADS / 32 values.
__device__ __forceinline__ double block_sum(double v, double* scratch) {
    v = warp_sum(v);
    if ((threadIdx.x & 31u) == 0u) {
        scratch[threadIdx.x >> 5] = v;
    }
    __syncthreads();
    double total = 0.0;
#pragma unroll
    for (u32 i = 0; i < ROW_THREADS / 32; ++i) {
        total += scratch[i];
    }
    // The scratch may be reused by a later reduction only once everyone has read it.
    __syncthreads();
    return total;
}
