// paged_attention_prefill.cu: varlen causal GQA attention of new query tokens against paged KV.
// Math (sequence s with q_len new tokens and kv_len = seq_lens[s] keys, the new tokens' K/V
//   already appended; query i sits at position past + i, past = kv_len - q_len; kv head
//   g = h / (n_heads / n_kv_heads)):
//   score_ij = scale * <q_i, K_j> for j <= past + i;  p = softmax_j(score) (f32, online)
//   out_i = bf16( sum_j p_ij V_j )
// Shapes: q [n_tokens, n_heads, head_dim] bf16 (token stride q_stride); cu_q_lens [n_seqs+1] i32
//         (query start offsets); seq_lens [n_seqs] i32; block_tables [n_seqs, max_pages] i32;
//         caches as in paged_kv.cu; out [n_tokens, n_heads, head_dim] bf16 contiguous.
// Tiling: a block owns BQ=16 queries of one (sequence, head); K/V tiles of BK=32 keys are staged
//   in shared memory and shared by the 16 queries; each of the 4 warps owns 4 queries, lane j
//   scores key j of the tile, and each lane accumulates head_dim/32 output dims in registers.
//   (CUDA-core f32 version; the mma.sync tensor-core version is the next step.)
// Launch: grid (ceil(max_q_len/16), n_heads, n_seqs), block 128. head_dim % 32 == 0, <= 256.

#define BQ 16
#define BK 32
#define MAXD 256
#define KPAD 2

extern "C" __global__ void __launch_bounds__(128) paged_attn_prefill_bf16(
    const bf16* __restrict__ q, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
    const int* __restrict__ block_tables, const int* __restrict__ cu_q_lens,
    const int* __restrict__ seq_lens, bf16* __restrict__ out, int n_heads, int n_kv_heads,
    int head_dim, int q_stride, int page_size, int max_pages, float scale) {
  __shared__ bf16 qs[BQ][MAXD];
  __shared__ bf16 ks[BK][MAXD + KPAD];
  __shared__ bf16 vs[BK][MAXD + KPAD];
  const int s = blockIdx.z, h = blockIdx.y, tile = blockIdx.x;
  const int q_start = cu_q_lens[s];
  const int q_len = cu_q_lens[s + 1] - q_start;
  const int kv_len = seq_lens[s];
  const int past = kv_len - q_len;
  if (tile * BQ >= q_len) return;
  const int g = h / (n_heads / n_kv_heads);
  const int* table = block_tables + (long long)s * max_pages;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int dpl = head_dim / 32;
  for (int idx = threadIdx.x; idx < BQ * head_dim; idx += blockDim.x) {
    const int qi = idx / head_dim, d = idx % head_dim, tq = tile * BQ + qi;
    qs[qi][d] = tq < q_len ? q[(long long)(q_start + tq) * q_stride + (long long)h * head_dim + d]
                           : tobf(0.0f);
  }
  float m[4], l[4], acc[4][8];
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    m[a] = NEG_INF;
    l[a] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[a][i] = 0.0f;
  }
  const int kv_end = past + min(q_len, (tile + 1) * BQ);  // exclusive
  for (int kb = 0; kb < kv_end; kb += BK) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < BK * head_dim; idx += blockDim.x) {
      const int jj = idx / head_dim, d = idx % head_dim, j = kb + jj;
      if (j < kv_end) {
        const long long row = (long long)table[j / page_size] * page_size + j % page_size;
        const long long off = (row * n_kv_heads + g) * head_dim + d;
        ks[jj][d] = k_cache[off];
        vs[jj][d] = v_cache[off];
      } else {
        ks[jj][d] = tobf(0.0f);
        vs[jj][d] = tobf(0.0f);
      }
    }
    __syncthreads();
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const int tq = tile * BQ + warp * 4 + a;
      if (tq >= q_len) continue;  // warp-uniform
      const int pos = past + tq;
      const int kj = kb + lane;
      float sc = NEG_INF;
      if (kj <= pos) {
        float dot = 0.0f;
        for (int d = 0; d < head_dim; ++d) dot += bf(qs[warp * 4 + a][d]) * bf(ks[lane][d]);
        sc = dot * scale;
      }
      const float mb = warp_max(sc);
      if (mb == NEG_INF) continue;  // warp-uniform: no visible key in this tile
      const float m_new = fmaxf(m[a], mb);
      const float corr = expf(m[a] - m_new);
      const float p = kj <= pos ? expf(sc - m_new) : 0.0f;
      l[a] = l[a] * corr + warp_sum(p);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[a][i] *= corr;
      for (int jj = 0; jj < BK; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
        if (pj == 0.0f) continue;  // uniform across the warp
#pragma unroll
        for (int i = 0; i < 8; ++i)
          if (i < dpl) acc[a][i] += pj * bf(vs[jj][lane + 32 * i]);
      }
      m[a] = m_new;
    }
  }
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int tq = tile * BQ + warp * 4 + a;
    if (tq >= q_len) continue;
    bf16* o = out + ((long long)(q_start + tq) * n_heads + h) * head_dim;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (i < dpl) o[lane + 32 * i] = tobf(l[a] > 0.0f ? acc[a][i] / l[a] : 0.0f);
  }
}
