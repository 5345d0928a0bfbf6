// moe_routing.cu: MoE router, softmax -> top-k -> renormalise (MODEL-SPECS §5.2 steps 2-3).
// Math (per token): p = softmax(logits) in f32 over all E experts; take the k largest p
//   (descending; equal values: lower expert id first); w_r = bf16( p_r / sum_{r<k} p_r ).
// Shapes: logits [n_tokens, E] bf16; topk_ids [n_tokens, k] i32; topk_weights [n_tokens, k] bf16.
//   E <= 512, k <= 32.
// Launch: grid (ceil(n_tokens/4)), block 128: one warp per token, probabilities in shared memory.

#define MAX_E 512

extern "C" __global__ void moe_topk_softmax_bf16(const bf16* __restrict__ logits,
                                                 int* __restrict__ topk_ids,
                                                 bf16* __restrict__ topk_weights, int n_tokens,
                                                 int n_experts, int k) {
  __shared__ float probs[4][MAX_E];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long long t = (long long)blockIdx.x * 4 + warp;
  if (t >= n_tokens) return;  // no block-wide barriers below
  float* p = probs[warp];
  const bf16* row = logits + t * n_experts;
  float m = NEG_INF;
  for (int e = lane; e < n_experts; e += 32) {
    p[e] = bf(row[e]);
    m = fmaxf(m, p[e]);
  }
  m = warp_max(m);
  float sum = 0.0f;
  for (int e = lane; e < n_experts; e += 32) {
    p[e] = expf(p[e] - m);
    sum += p[e];
  }
  sum = warp_sum(sum);
  for (int e = lane; e < n_experts; e += 32) p[e] /= sum;
  __syncwarp();
  float mine = 0.0f, picked_sum = 0.0f;
  for (int r = 0; r < k; ++r) {
    float bv = -1.0f;
    int bi = n_experts;
    for (int e = lane; e < n_experts; e += 32)
      if (p[e] > bv) { bv = p[e]; bi = e; }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    if (bi >= n_experts) bi = 0;  // all-NaN row: no expert compared greater; stay in bounds
    if (lane == r) mine = bv;
    if (lane == 0) topk_ids[t * k + r] = bi;
    picked_sum += bv;
    __syncwarp();
    if (lane == (bi & 31)) p[bi] = -2.0f;  // taken
    __syncwarp();
  }
  if (lane < k) topk_weights[t * k + lane] = tobf(mine / picked_sum);
}
