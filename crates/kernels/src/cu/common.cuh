// common.cuh: prepended to every kernel file before NVRTC compiles it (not compiled on its own).
// bf16 storage helpers, round-to-nearest-even conversions and warp/block reductions.
// Invariants: blockDim.x is a multiple of 32 and at most 1024 wherever block_* is used, and every
// thread of the block calls block_* (they contain __syncthreads()).
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;
#define DEVI __device__ __forceinline__
#define NEG_INF (-__int_as_float(0x7f800000))

DEVI float bf(bf16 x) { return __bfloat162float(x); }
DEVI bf16 tobf(float x) { return __float2bfloat16_rn(x); }
// Rounds an f32 to the nearest bf16 value and back (a torch bf16 op result, seen as f32).
DEVI float round_bf(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
DEVI float silu_f(float x) { return x / (1.0f + expf(-x)); }

DEVI float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
DEVI float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum over the block; every thread gets the result.
DEVI float block_sum(float v) {
  __shared__ float sh_sum[32];
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh_sum[wid] = v;
  __syncthreads();
  float r = lane < nw ? sh_sum[lane] : 0.0f;
  return warp_sum(r);
}
// Max over the block; every thread gets the result.
DEVI float block_max(float v) {
  __shared__ float sh_max[32];
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh_max[wid] = v;
  __syncthreads();
  float r = lane < nw ? sh_max[lane] : NEG_INF;
  return warp_max(r);
}
