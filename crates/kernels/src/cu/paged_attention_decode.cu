// paged_attention_decode.cu: one query token per sequence against its paged KV, split-K (GQA).
// Math (per sequence s, query head h, kv head g = h / (n_heads / n_kv_heads), L = seq_lens[s]):
//   score_j = scale * <q[s,h,:], K[s,j,g,:]>  for j < L;  p = softmax(score) (f32)
//   out[s,h,:] = bf16( sum_j p_j V[s,j,g,:] )
// Split-K: keys are cut into partitions of part_tokens; pass 1 writes, per partition, the
//   unnormalised sum acc = sum_j e^(score_j - m) V_j, its max m and its sum l = sum_j e^(score_j - m);
//   pass 2 merges: M = max m_p, out = sum_p e^(m_p-M) acc_p / sum_p e^(m_p-M) l_p.
// Shapes: q [n_seqs, n_heads, head_dim] bf16 (token stride q_stride); caches as in paged_kv.cu;
//         block_tables [n_seqs, max_pages] i32 (page ids); seq_lens [n_seqs] i32 (keys incl. the
//         new token); part_acc [n_seqs, n_heads, max_parts, head_dim] f32; part_max, part_sum
//         [n_seqs, n_heads, max_parts] f32; out [n_seqs, n_heads, head_dim] bf16.
// Launch: pass 1 grid (n_heads, n_seqs, max_parts), block 128, dynamic smem
//         (head_dim + part_tokens) * 4 bytes; pass 2 grid (n_heads, n_seqs), block 128.
//         Requires seq_lens[s] <= max_parts * part_tokens and <= max_pages * page_size.

extern "C" __global__ void paged_attn_decode_partial_bf16(
    const bf16* __restrict__ q, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
    const int* __restrict__ block_tables, const int* __restrict__ seq_lens,
    float* __restrict__ part_acc, float* __restrict__ part_max, float* __restrict__ part_sum,
    int n_heads, int n_kv_heads, int head_dim, int q_stride, int page_size, int max_pages,
    int part_tokens, int max_parts, float scale) {
  extern __shared__ float smem[];
  float* q_s = smem;                 // [head_dim]
  float* scores = smem + head_dim;   // [part_tokens]
  const int h = blockIdx.x, s = blockIdx.y, part = blockIdx.z;
  const int len = seq_lens[s];
  const int start = part * part_tokens;
  const long long idx = ((long long)s * n_heads + h) * max_parts + part;
  if (start >= len) {
    if (threadIdx.x == 0) { part_max[idx] = NEG_INF; part_sum[idx] = 0.0f; }
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) part_acc[idx * head_dim + d] = 0.0f;
    return;
  }
  const int end = min(len, start + part_tokens);
  const int g = h / (n_heads / n_kv_heads);
  const int* table = block_tables + (long long)s * max_pages;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    q_s[d] = bf(q[(long long)s * q_stride + (long long)h * head_dim + d]);
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int j = start + warp; j < end; j += n_warps) {
    const long long row = (long long)table[j / page_size] * page_size + j % page_size;
    const bf16* kp = k_cache + (row * n_kv_heads + g) * head_dim;
    float dot = 0.0f;
    for (int d = lane; d < head_dim; d += 32) dot += q_s[d] * bf(kp[d]);
    dot = warp_sum(dot);
    if (lane == 0) scores[j - start] = dot * scale;
  }
  __syncthreads();
  float m = NEG_INF;
  for (int j = threadIdx.x; j < end - start; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = block_max(m);
  float l = 0.0f;
  for (int j = threadIdx.x; j < end - start; j += blockDim.x) {
    const float e = expf(scores[j] - m);
    scores[j] = e;
    l += e;
  }
  l = block_sum(l);  // contains __syncthreads(): scores[] is complete after this
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int j = start; j < end; ++j) {
      const long long row = (long long)table[j / page_size] * page_size + j % page_size;
      acc += scores[j - start] * bf(v_cache[(row * n_kv_heads + g) * head_dim + d]);
    }
    part_acc[idx * head_dim + d] = acc;
  }
  if (threadIdx.x == 0) { part_max[idx] = m; part_sum[idx] = l; }
}

extern "C" __global__ void paged_attn_decode_reduce_bf16(
    const float* __restrict__ part_acc, const float* __restrict__ part_max,
    const float* __restrict__ part_sum, const int* __restrict__ seq_lens, bf16* __restrict__ out,
    int n_heads, int head_dim, int part_tokens, int max_parts) {
  const int h = blockIdx.x, s = blockIdx.y;
  const int len = seq_lens[s];
  const int n_parts = min(max_parts, (len + part_tokens - 1) / part_tokens);
  const long long base = ((long long)s * n_heads + h) * max_parts;
  bf16* o = out + ((long long)s * n_heads + h) * head_dim;
  float big_m = NEG_INF;
  for (int p = 0; p < n_parts; ++p) big_m = fmaxf(big_m, part_max[base + p]);
  float total = 0.0f;
  for (int p = 0; p < n_parts; ++p) total += part_sum[base + p] * expf(part_max[base + p] - big_m);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int p = 0; p < n_parts; ++p)
      acc += part_acc[(base + p) * head_dim + d] * expf(part_max[base + p] - big_m);
    o[d] = tobf(n_parts > 0 ? acc / total : 0.0f);
  }
}
