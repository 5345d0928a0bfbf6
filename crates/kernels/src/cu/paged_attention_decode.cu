// paged_attention_decode.cu: one query token per sequence against its paged KV, split-K (GQA).
// Math (per sequence s, query head h, kv head g = h / (n_heads / n_kv_heads), L = seq_lens[s]):
//   score_j = scale * <q[s,h,:], K[s,j,g,:]>  for j < L;  p = softmax(score) (f32)
//   out[s,h,:] = bf16( sum_j p_j V[s,j,g,:] )
// Split-K: keys are cut into partitions of P tokens; pass 1 writes, per partition, the
//   unnormalised sum acc = sum_j e^(score_j - m) V_j, its max m and its sum l = sum_j e^(score_j - m);
//   pass 2 merges: M = max m_p, out = sum_p e^(m_p-M) acc_p / sum_p e^(m_p-M) l_p.
// Partition size P: the GQA kernel (adaptive = 1) uses decode_part_tokens(L, part_tokens): the
//   smallest power of two >= 64 with 32 * P >= L, capped at part_tokens (<= 512), so a single long
//   sequence still spreads over ~32 partitions (grid >= 2x SMs at batch 1); P depends only on the
//   sequence's own length, so results do not depend on the batch. The generic kernel (adaptive = 0,
//   head_dims the GQA kernel does not take) uses P = part_tokens.
// Shapes: q [n_seqs, n_heads, head_dim] bf16 (token stride q_stride); caches as in paged_kv.cu;
//         block_tables [n_seqs, max_pages] i32 (page ids); seq_lens [n_seqs] i32 (keys incl. the
//         new token); part_acc [n_seqs, n_heads, max_parts, head_dim] f32; part_max, part_sum
//         [n_seqs, n_heads, max_parts] f32; out [n_seqs, n_heads, head_dim] bf16.
// Launch: GQA pass 1 (paged_attn_decode_gqa_bf16, head_dim in {16,32,64,128,256}): grid
//         (n_kv_heads * ceil(group/8), n_seqs, max_parts), block 128, static smem 32 KiB; one block
//         serves up to 8 query heads of one kv head, so each K/V row is read once per kv head;
//         head_dim/8 lanes share a key row with 16-byte loads, 4 rows in flight per lane.
//         Generic pass 1 (paged_attn_decode_partial_bf16): grid (n_heads, n_seqs, max_parts),
//         block 128, dynamic smem (head_dim + part_tokens) * 4 bytes.
//         Pass 2: grid (n_heads, n_seqs), block 128.
//         Requires seq_lens[s] <= (partitions the grid covers) * P and <= max_pages * page_size.

#define DEC_MIN_PART 64
#define DEC_TARGET_PARTS 32
#define DEC_MAX_PART 512
#define DEC_HG 8        // query heads per GQA block
#define DEC_UNROLL 4    // key rows in flight per lane
#define DEC_THREADS 128

// Partition size of a sequence of len keys (see the header); max_part <= DEC_MAX_PART.
DEVI int decode_part_tokens(int len, int max_part) {
  int p = min(DEC_MIN_PART, max_part);
  while (p < max_part && p * DEC_TARGET_PARTS < len) p <<= 1;
  return min(p, max_part);
}

DEVI void bf16x8_to_f32(const uint4 v, float* f) {
  const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(b[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

template <int D>
DEVI void decode_gqa_body(const bf16* __restrict__ q, const bf16* __restrict__ k_cache,
                          const bf16* __restrict__ v_cache, const int* __restrict__ block_tables,
                          const int* __restrict__ seq_lens, float* __restrict__ part_acc,
                          float* __restrict__ part_max, float* __restrict__ part_sum, int n_heads,
                          int n_kv_heads, int q_stride, int page_size, int max_pages,
                          int part_tokens, int max_parts, float scale, float* sm) {
  constexpr int CPR = D / 8;              // lanes per key row (16 bytes each)
  constexpr int KL = DEC_THREADS / CPR;   // key rows per block step
  constexpr int STEP = KL * DEC_UNROLL;   // key rows per loop iteration
  const int group = n_heads / n_kv_heads;
  const int chunks = (group + DEC_HG - 1) / DEC_HG;
  const int g = blockIdx.x / chunks, h0 = g * group + (blockIdx.x % chunks) * DEC_HG;
  const int nh = min(DEC_HG, g * group + group - h0);  // heads this block serves
  const int s = blockIdx.y, part = blockIdx.z;
  const int len = seq_lens[s];
  const int pt = decode_part_tokens(len, part_tokens);
  const int start = part * pt;
  if (start >= len) {  // empty partition (pass 2 reads only the first ceil(len / pt))
    if (threadIdx.x < nh) {
      const long long idx = ((long long)s * n_heads + h0 + threadIdx.x) * max_parts + part;
      part_max[idx] = NEG_INF;
      part_sum[idx] = 0.0f;
    }
    return;
  }
  const int end = min(len, start + pt), n = end - start;
  const int* table = block_tables + (long long)s * max_pages;
  const int c = threadIdx.x % CPR, kl = threadIdx.x / CPR;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* scores = sm;                     // [DEC_HG][DEC_MAX_PART]
  __shared__ float red_m[DEC_HG], red_l[DEC_HG];

  float qr[DEC_HG][8];
#pragma unroll
  for (int hh = 0; hh < DEC_HG; ++hh) {
    const bf16* qp = q + (long long)s * q_stride + (long long)(h0 + hh) * D + c * 8;
#pragma unroll
    for (int e = 0; e < 8; ++e) qr[hh][e] = hh < nh ? bf(qp[e]) : 0.0f;
  }
  const long long kv_off = (long long)g * D + c * 8;

  // Pass 1a: scores[hh][j - start] = scale * <q_hh, K_j>.
  for (int b = start; b < end; b += STEP) {
    uint4 kv[DEC_UNROLL];
#pragma unroll
    for (int u = 0; u < DEC_UNROLL; ++u) {
      const int j = b + kl + u * KL;
      kv[u] = make_uint4(0u, 0u, 0u, 0u);
      if (j < end) {
        const long long row = (long long)table[j / page_size] * page_size + j % page_size;
        kv[u] = *reinterpret_cast<const uint4*>(k_cache + row * n_kv_heads * D + kv_off);
      }
    }
#pragma unroll
    for (int u = 0; u < DEC_UNROLL; ++u) {
      const int j = b + kl + u * KL;
      float kf[8];
      bf16x8_to_f32(kv[u], kf);
#pragma unroll
      for (int hh = 0; hh < DEC_HG; ++hh) {
        if (hh >= nh) break;  // block-uniform: the shuffles below stay warp-convergent
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot = fmaf(qr[hh][e], kf[e], dot);
#pragma unroll
        for (int o = CPR / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (c == 0 && j < end) scores[hh * DEC_MAX_PART + (j - start)] = dot * scale;
      }
    }
  }
  __syncthreads();
  // Pass 1b: per head max, exponentials, sum (warp w takes heads w, w + 4).
  for (int hh = warp; hh < nh; hh += DEC_THREADS / 32) {
    float* sc = scores + hh * DEC_MAX_PART;
    float m = NEG_INF;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, sc[j]);
    m = warp_max(m);
    float l = 0.0f;
    for (int j = lane; j < n; j += 32) {
      const float e = expf(sc[j] - m);
      sc[j] = e;
      l += e;
    }
    l = warp_sum(l);
    if (lane == 0) {
      red_m[hh] = m;
      red_l[hh] = l;
    }
  }
  __syncthreads();
  // Pass 1c: acc[hh][c*8 + e] = sum_j p[hh][j] V_j (this lane's keys), then reduce over lanes.
  float acc[DEC_HG][8];
#pragma unroll
  for (int hh = 0; hh < DEC_HG; ++hh)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[hh][e] = 0.0f;
  for (int b = start; b < end; b += STEP) {
    uint4 vv[DEC_UNROLL];
#pragma unroll
    for (int u = 0; u < DEC_UNROLL; ++u) {
      const int j = b + kl + u * KL;
      vv[u] = make_uint4(0u, 0u, 0u, 0u);
      if (j < end) {
        const long long row = (long long)table[j / page_size] * page_size + j % page_size;
        vv[u] = *reinterpret_cast<const uint4*>(v_cache + row * n_kv_heads * D + kv_off);
      }
    }
#pragma unroll
    for (int u = 0; u < DEC_UNROLL; ++u) {
      const int j = b + kl + u * KL;
      if (j >= end) continue;
      float vf[8];
      bf16x8_to_f32(vv[u], vf);
#pragma unroll
      for (int hh = 0; hh < DEC_HG; ++hh) {
        if (hh >= nh) break;
        const float p = scores[hh * DEC_MAX_PART + (j - start)];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[hh][e] = fmaf(p, vf[e], acc[hh][e]);
      }
    }
  }
  // Lanes with the same c in a warp differ by multiples of CPR.
#pragma unroll
  for (int hh = 0; hh < DEC_HG; ++hh) {
    if (hh >= nh) break;  // block-uniform
#pragma unroll
    for (int e = 0; e < 8; ++e)
#pragma unroll
      for (int o = CPR; o < 32; o <<= 1) acc[hh][e] += __shfl_xor_sync(0xffffffffu, acc[hh][e], o);
  }
  __syncthreads();  // everyone is done reading scores: reuse sm as red [4 warps][DEC_HG][D]
  float* red = sm;
  if (lane < CPR) {
#pragma unroll
    for (int hh = 0; hh < DEC_HG; ++hh)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[(warp * DEC_HG + hh) * D + c * 8 + e] = acc[hh][e];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < nh * D; i += DEC_THREADS) {
    const int hh = i / D, d = i % D;
    float a = 0.0f;
#pragma unroll
    for (int w = 0; w < DEC_THREADS / 32; ++w) a += red[(w * DEC_HG + hh) * D + d];
    const long long idx = ((long long)s * n_heads + h0 + hh) * max_parts + part;
    part_acc[idx * D + d] = a;
  }
  if (threadIdx.x < nh) {
    const long long idx = ((long long)s * n_heads + h0 + threadIdx.x) * max_parts + part;
    part_max[idx] = red_m[threadIdx.x];
    part_sum[idx] = red_l[threadIdx.x];
  }
}

// Pass 1, GQA-grouped (see the header). part_tokens <= DEC_MAX_PART (launcher-checked).
extern "C" __global__ void __launch_bounds__(DEC_THREADS) paged_attn_decode_gqa_bf16(
    const bf16* __restrict__ q, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
    const int* __restrict__ block_tables, const int* __restrict__ seq_lens,
    float* __restrict__ part_acc, float* __restrict__ part_max, float* __restrict__ part_sum,
    int n_heads, int n_kv_heads, int head_dim, int q_stride, int page_size, int max_pages,
    int part_tokens, int max_parts, float scale) {
  // Union: scores [DEC_HG][DEC_MAX_PART] (16 KiB), later red [4][DEC_HG][head_dim] (<= 32 KiB).
  __shared__ float sm[DEC_THREADS / 32 * DEC_HG * 256];
#define DEC_CASE(DD)                                                                          \
  case DD:                                                                                    \
    decode_gqa_body<DD>(q, k_cache, v_cache, block_tables, seq_lens, part_acc, part_max,      \
                        part_sum, n_heads, n_kv_heads, q_stride, page_size, max_pages,        \
                        part_tokens, max_parts, scale, sm);                                   \
    break;
  switch (head_dim) {
    DEC_CASE(16)
    DEC_CASE(32)
    DEC_CASE(64)
    DEC_CASE(128)
    DEC_CASE(256)
    default:
      break;
  }
#undef DEC_CASE
}

// Pass 1, generic (one block per query head, any head_dim, P = part_tokens).
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

// Pass 2: merges the partitions of one (sequence, head).
extern "C" __global__ void paged_attn_decode_reduce_bf16(
    const float* __restrict__ part_acc, const float* __restrict__ part_max,
    const float* __restrict__ part_sum, const int* __restrict__ seq_lens, bf16* __restrict__ out,
    int n_heads, int head_dim, int part_tokens, int max_parts, int adaptive) {
  const int h = blockIdx.x, s = blockIdx.y;
  const int len = seq_lens[s];
  const int pt = adaptive ? decode_part_tokens(len, part_tokens) : part_tokens;
  const int n_parts = min(max_parts, (len + pt - 1) / pt);
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
