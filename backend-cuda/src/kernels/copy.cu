// dst[i] = src[i] over `n` 16-byte words, grid-stride: the device-to-device copy that measures the
// memory bandwidth decode is held against (one read and one write of every byte).
extern "C" __global__ void copy_u128(const u64 n, const uint4* __restrict__ src,
                                     uint4* __restrict__ dst) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dst[i] = src[i];
    }
}
