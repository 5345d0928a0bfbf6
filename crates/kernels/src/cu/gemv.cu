// gemv.cu: skinny GEMMs of decode steps, y = x · Wᵀ (+ bias) for a handful of rows, streaming
// the weight once at close to HBM bandwidth (cuBLAS's GEMM kernels are tuned for wide x).
// Math:   y[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o]), f32 accumulation, bf16 or f32 output.
// Shapes: x [n_rows, K] bf16 (1 <= n_rows <= GEMV_MAX_ROWS); W [N, K] bf16 row-major; bias [N]
//         bf16 (read only when has_bias); y [n_rows, N]; K % 8 == 0; x and W 16-byte aligned.
// Order:  lane l sums chunks c = l, l+32, ... of 8 values in order, then a fixed butterfly warp
//         sum: a row's result depends only on K, never on n_rows (batch-invariant).
// Launch: grid ceil(N / GEMV_WARPS), block 32 * GEMV_WARPS; warp w of block b owns output
//         o = b * GEMV_WARPS + w for every row. gemv_multi_bf16 does up to three such
//         products of one x in one launch (see its comment).

#define GEMV_MAX_ROWS 8
#define GEMV_WARPS 8

template <int R>
__device__ __forceinline__ void gemv_rows(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                          int k8, float (&acc)[GEMV_MAX_ROWS]) {
  const int lane = threadIdx.x & 31;
  const uint4* w4 = reinterpret_cast<const uint4*>(w);
#pragma unroll 4
  for (int c = lane; c < k8; c += 32) {
    const uint4 wv = w4[c];
    const __nv_bfloat162* wb = reinterpret_cast<const __nv_bfloat162*>(&wv);
    float wf[8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 p = __bfloat1622float2(wb[j]);
      wf[2 * j] = p.x;
      wf[2 * j + 1] = p.y;
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint4 xv = reinterpret_cast<const uint4*>(x + (long long)r * k8 * 8)[c];
      const __nv_bfloat162* xb = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 p = __bfloat1622float2(xb[j]);
        acc[r] = fmaf(wf[2 * j], p.x, acc[r]);
        acc[r] = fmaf(wf[2 * j + 1], p.y, acc[r]);
      }
    }
  }
}

__device__ __forceinline__ void gemv_store(float* y, long long i, float v) { y[i] = v; }
__device__ __forceinline__ void gemv_store(bf16* y, long long i, float v) { y[i] = tobf(v); }

// Output o (of n_out) for every row: one warp.
template <typename T>
__device__ __forceinline__ void gemv_body(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                          const bf16* __restrict__ bias, T* __restrict__ y,
                                          int n_rows, int n_out, int k, int has_bias, int o) {
  const int lane = threadIdx.x & 31;
  float acc[GEMV_MAX_ROWS];
#pragma unroll
  for (int r = 0; r < GEMV_MAX_ROWS; ++r) acc[r] = 0.0f;
  const bf16* wrow = w + (long long)o * k;
  const int k8 = k / 8;
  switch (n_rows) {
    case 1: gemv_rows<1>(x, wrow, k8, acc); break;
    case 2: gemv_rows<2>(x, wrow, k8, acc); break;
    case 3: gemv_rows<3>(x, wrow, k8, acc); break;
    case 4: gemv_rows<4>(x, wrow, k8, acc); break;
    case 5: gemv_rows<5>(x, wrow, k8, acc); break;
    case 6: gemv_rows<6>(x, wrow, k8, acc); break;
    case 7: gemv_rows<7>(x, wrow, k8, acc); break;
    default: gemv_rows<8>(x, wrow, k8, acc); break;
  }
  const float b = has_bias ? bf(bias[o]) : 0.0f;
#pragma unroll
  for (int r = 0; r < GEMV_MAX_ROWS; ++r) {
    if (r >= n_rows) break;
    const float v = warp_sum(acc[r]);
    if (lane == 0) gemv_store(y, (long long)r * n_out + o, v + b);
  }
}

extern "C" __global__ void gemv_bf16(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                     const bf16* __restrict__ bias, bf16* __restrict__ y,
                                     int n_rows, int n_out, int k, int has_bias) {
  const int o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
  if (o < n_out) gemv_body<bf16>(x, w, bias, y, n_rows, n_out, k, has_bias, o);
}

extern "C" __global__ void gemv_bf16_f32out(const bf16* __restrict__ x,
                                            const bf16* __restrict__ w,
                                            const bf16* __restrict__ bias, float* __restrict__ y,
                                            int n_rows, int n_out, int k, int has_bias) {
  const int o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
  if (o < n_out) gemv_body<float>(x, w, bias, y, n_rows, n_out, k, has_bias, o);
}

// Up to three projections of the same x in one launch (q|k|v, gate|up): outputs 0..n0 use
// (w0, b0, y0), the next n1 (w1, b1, y1), the next n2 (w2, b2, y2); bit i of bias_mask says
// whether b_i is read. Each output row runs exactly gemv_body, so the values equal separate
// gemv_bf16 launches bit for bit. Launch: grid ceil((n0 + n1 + n2) / GEMV_WARPS).
extern "C" __global__ void gemv_multi_bf16(
    const bf16* __restrict__ x, const bf16* __restrict__ w0, const bf16* __restrict__ w1,
    const bf16* __restrict__ w2, const bf16* __restrict__ b0, const bf16* __restrict__ b1,
    const bf16* __restrict__ b2, bf16* __restrict__ y0, bf16* __restrict__ y1,
    bf16* __restrict__ y2, int n0, int n1, int n2, int n_rows, int k, int bias_mask) {
  int o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
  if (o < n0) {
    gemv_body<bf16>(x, w0, b0, y0, n_rows, n0, k, bias_mask & 1, o);
    return;
  }
  o -= n0;
  if (o < n1) {
    gemv_body<bf16>(x, w1, b1, y1, n_rows, n1, k, (bias_mask >> 1) & 1, o);
    return;
  }
  o -= n1;
  if (o < n2) gemv_body<bf16>(x, w2, b2, y2, n_rows, n2, k, (bias_mask >> 2) & 1, o);
}
