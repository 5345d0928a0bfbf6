// causal_conv1d.cu: depthwise causal conv1d over time + SiLU (MODEL-SPECS §4.4 step 2).
// Math (channel c, kernel size K, window = the K-1 previous inputs, oldest first):
//   y_t[c] = bf16( sum_{j<K-1} w[c,j] * window[j] + w[c,K-1] * x_t[c] );  out = bf16(silu(y))
//   then the window shifts by one and takes x_t[c]. Before a fresh sequence the window is zeros
//   (the caller zeroes the slot); continuation reads it from the state.
// Shapes: x [n_tokens, conv_dim] bf16 (row stride x_stride); w [conv_dim, K] bf16;
//   conv_state [n_slots, conv_dim, K-1] bf16 (updated in place); state_slots [n_seqs] i32;
//   out [n_tokens, conv_dim] bf16. Prefill: cu_seqlens [n_seqs+1] i32. Decode: token s is
//   sequence s's single new token. K <= 8.
// Launch: grid (ceil(conv_dim/128), n_seqs), block 128; one thread walks one channel in time.

#define MAX_K 8

DEVI void conv_channel(const bf16* __restrict__ x, const bf16* __restrict__ w,
                       bf16* __restrict__ st, bf16* __restrict__ out, long long t0, long long t1,
                       int c, int conv_dim, int x_stride, int k) {
  float win[MAX_K - 1], wt[MAX_K];
#pragma unroll
  for (int j = 0; j < MAX_K; ++j) wt[j] = j < k ? bf(w[(long long)c * k + j]) : 0.0f;
#pragma unroll
  for (int j = 0; j < MAX_K - 1; ++j) win[j] = j < k - 1 ? bf(st[j]) : 0.0f;
  for (long long t = t0; t < t1; ++t) {
    const float xt = bf(x[t * x_stride + c]);
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < MAX_K - 1; ++j)
      if (j < k - 1) acc += wt[j] * win[j];
#pragma unroll
    for (int j = 0; j < MAX_K; ++j)
      if (j == k - 1) acc += wt[j] * xt;
    out[t * conv_dim + c] = tobf(round_bf(silu_f(round_bf(acc))));
#pragma unroll
    for (int j = 0; j < MAX_K - 2; ++j)
      if (j + 1 < k - 1) win[j] = win[j + 1];
#pragma unroll
    for (int j = 0; j < MAX_K - 1; ++j)
      if (j == k - 2) win[j] = xt;
  }
#pragma unroll
  for (int j = 0; j < MAX_K - 1; ++j)
    if (j < k - 1) st[j] = tobf(win[j]);
}

extern "C" __global__ void causal_conv1d_prefill_bf16(const bf16* __restrict__ x,
                                                      const bf16* __restrict__ w,
                                                      bf16* __restrict__ conv_state,
                                                      const int* __restrict__ state_slots,
                                                      const int* __restrict__ cu_seqlens,
                                                      bf16* __restrict__ out, int conv_dim,
                                                      int x_stride, int k) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
  if (c >= conv_dim) return;
  bf16* st = conv_state + ((long long)state_slots[s] * conv_dim + c) * (k - 1);
  conv_channel(x, w, st, out, cu_seqlens[s], cu_seqlens[s + 1], c, conv_dim, x_stride, k);
}

extern "C" __global__ void causal_conv1d_decode_bf16(const bf16* __restrict__ x,
                                                     const bf16* __restrict__ w,
                                                     bf16* __restrict__ conv_state,
                                                     const int* __restrict__ state_slots,
                                                     bf16* __restrict__ out, int conv_dim,
                                                     int x_stride, int k) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
  if (c >= conv_dim) return;
  bf16* st = conv_state + ((long long)state_slots[s] * conv_dim + c) * (k - 1);
  conv_channel(x, w, st, out, s, s + 1, c, conv_dim, x_stride, k);
}
