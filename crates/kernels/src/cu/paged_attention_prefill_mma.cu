// paged_attention_prefill_mma.cu: tensor-core (mma.sync bf16) varlen causal GQA prefill attention.
// Math: the same function as paged_attention_prefill.cu (sequence s: q_len new tokens, kv_len =
//   seq_lens[s] keys incl. the new ones, query i at position past + i, past = kv_len - q_len, kv
//   head g = h / (n_heads / n_kv_heads)):
//   score_ij = scale * <q_i, K_j> for j <= past + i;  p = softmax_j(score)
//   out_i = bf16( sum_j p_ij V_j )
//   Q.K^T and P.V run on the tensor cores (bf16 operands, f32 accumulation); the online softmax
//   (running max m, running sum l, rescale of the accumulator) is f32; P is rounded to bf16 as the
//   A operand of P.V (FlashAttention-2), l sums the unrounded f32 p.
// Shapes: q [n_tokens, n_heads, head_dim] bf16 (token stride q_stride); cu_q_lens [n_seqs+1] i32;
//         seq_lens [n_seqs] i32; block_tables [n_seqs, max_pages] i32; caches [num_pages,
//         page_size, n_kv_heads, head_dim] bf16 (paged_kv.cu); out [n_tokens, n_heads, head_dim]
//         bf16 contiguous.
// Tiling: a block owns BQ=64 queries of one (sequence, head); each of its 4 warps owns 16 query
//   rows (one m16 tile) and keeps Q fragments, S (16 x 32 keys) and O (16 x head_dim) in
//   registers (168 registers, no spills, at head_dim 128; BK=64 spilled). The Q tile is staged
//   once through the K/V buffers. K/V tiles of BK=32 keys are gathered from their pages with
//   16-byte cp.async into shared memory rows padded by 8 bf16 (ldmatrix conflict-free); V_t loads
//   while S = Q.K_t^T and the softmax run, K_{t+1} loads while O += P.V_t. Rows past kv_end are
//   zero-filled. Fragment layouts are those of PTX mma.m16n8k16 (row.col): the S accumulators
//   are reused as the A operand of P.V without a trip through shared memory.
// Launch: grid (ceil(max_q_len/64), n_heads, n_seqs) with blockIdx.x reversed (the longest causal
//   tiles start first), block 128, static smem 2*32*(128+8)*2 = 17408 B.
// Requires (checked by the launcher): head_dim 64 or 128; k_cache, v_cache 16-byte aligned;
//   out 4-byte aligned. q has no alignment requirement (16-byte path when aligned).

#define MMA_BQ 64
#define MMA_BK 32
#define MMA_PAD 8
#define MMA_MAXD 128
#define MMA_THREADS 128

DEVI unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

DEVI void ldsm_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
DEVI void ldsm_x4_t(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
// c[16x8] += a[16x16] * b[16x8], bf16 operands, f32 accumulators.
DEVI void mma_bf16_16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 16-byte global->shared copy; src_bytes 0 zero-fills the destination (src is not read).
DEVI void cp_async16(unsigned dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes)
               : "memory");
}
DEVI void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
DEVI void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// Two f32 -> packed bf16x2 (lo in the low half: the lower column index of an mma fragment).
DEVI unsigned pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<unsigned*>(&v);
}

// Gathers keys kb..kb+BK-1 of kv head g (rows >= kv_end zero-filled) into dst [BK][D+PAD].
template <int D>
DEVI void load_kv_tile(bf16* dst, const bf16* __restrict__ cache, const int* __restrict__ table,
                       int kb, int kv_end, int page_size, int n_kv_heads, int g) {
  constexpr int CPR = D / 8;  // 16-byte chunks per row
  constexpr int ITERS = MMA_BK * CPR / MMA_THREADS;
#pragma unroll
  for (int i = 0; i < ITERS; ++i) {
    const int c = threadIdx.x + i * MMA_THREADS;
    const int r = c / CPR, col = (c % CPR) * 8;
    const int j = kb + r;
    const bf16* src = cache;
    int bytes = 0;
    if (j < kv_end) {
      const long long row = (long long)table[j / page_size] * page_size + j % page_size;
      src = cache + (row * n_kv_heads + g) * D + col;
      bytes = 16;
    }
    cp_async16(smem_addr(dst + r * (D + MMA_PAD) + col), src, bytes);
  }
}

template <int D>
DEVI void prefill_mma_body(const bf16* __restrict__ q, const bf16* __restrict__ k_cache,
                           const bf16* __restrict__ v_cache, const int* __restrict__ block_tables,
                           const int* __restrict__ cu_q_lens, const int* __restrict__ seq_lens,
                           bf16* __restrict__ out, int n_heads, int n_kv_heads, int q_stride,
                           int page_size, int max_pages, float scale, bf16* smem) {
  constexpr int LD = D + MMA_PAD;  // smem row stride (elements)
  static_assert(MMA_BQ <= 2 * MMA_BK, "the Q tile is staged in sk + sv");
  bf16* sk = smem;            // [BK][LD]
  bf16* sv = smem + MMA_BK * LD;  // [BK][LD]
  const int s = blockIdx.z, h = blockIdx.y, tile = gridDim.x - 1 - blockIdx.x;
  const int q_start = cu_q_lens[s];
  const int q_len = cu_q_lens[s + 1] - q_start;
  const int kv_len = seq_lens[s];
  const int past = kv_len - q_len;
  if (tile * MMA_BQ >= q_len) return;  // block-uniform
  const int g = h / (n_heads / n_kv_heads);
  const int* table = block_tables + (long long)s * max_pages;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kv_end = past + min(q_len, (tile + 1) * MMA_BQ);  // exclusive, block-uniform

  // Q tile -> smem (rows past q_len zero; it spans sk and sv), then into registers.
  bf16* sq = sk;
  const bf16* q_base = q + (long long)h * D;
  const bool q_vec = ((reinterpret_cast<size_t>(q_base) | ((size_t)q_stride * 2)) & 15) == 0;
  if (q_vec) {
    constexpr int CPR = D / 8;
#pragma unroll
    for (int i = 0; i < MMA_BQ * CPR / MMA_THREADS; ++i) {
      const int c = threadIdx.x + i * MMA_THREADS;
      const int r = c / CPR, col = (c % CPR) * 8, tq = tile * MMA_BQ + r;
      const bool ok = tq < q_len;
      const bf16* src = ok ? q_base + (long long)(q_start + tq) * q_stride + col : q;
      cp_async16(smem_addr(sq + r * LD + col), src, ok ? 16 : 0);
    }
    cp_async_commit();
    cp_async_wait_all();
  } else {
    for (int idx = threadIdx.x; idx < MMA_BQ * D; idx += MMA_THREADS) {
      const int r = idx / D, d = idx % D, tq = tile * MMA_BQ + r;
      sq[r * LD + d] = tq < q_len ? q_base[(long long)(q_start + tq) * q_stride + d] : tobf(0.0f);
    }
  }
  __syncthreads();
  // Q fragments (A operand, 16 rows x D) for this warp's rows.
  unsigned qf[D / 16][4];
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc) {
    const int row = warp * 16 + (lane & 15), col = kc * 16 + (lane >> 4) * 8;
    ldsm_x4(qf[kc][0], qf[kc][1], qf[kc][2], qf[kc][3], smem_addr(sq + row * LD + col));
  }
  __syncthreads();  // every warp holds its Q fragments: sk/sv are free
  load_kv_tile<D>(sk, k_cache, table, 0, kv_end, page_size, n_kv_heads, g);
  cp_async_commit();

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m_run[2] = {NEG_INF, NEG_INF}, l_run[2] = {0.0f, 0.0f};
  const float sl2 = scale * 1.4426950408889634f;  // scale * log2(e): exp(x*scale) = exp2(x*sl2)
  const int r0 = warp * 16 + (lane >> 2);         // tile rows r0 and r0 + 8
  const int pos0 = past + tile * MMA_BQ + r0, pos1 = pos0 + 8;
  const int first_pos = past + tile * MMA_BQ;     // smallest query position of the block

  for (int kb = 0; kb < kv_end; kb += MMA_BK) {
    cp_async_wait_all();
    __syncthreads();  // K tile kb is in sk; every warp is done with sv (V of the last tile)
    load_kv_tile<D>(sv, v_cache, table, kb, kv_end, page_size, n_kv_heads, g);
    cp_async_commit();

    // S = Q K^T: 16 rows x 64 keys per warp.
    float sc[MMA_BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; ++nt) {
      sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
      for (int kc = 0; kc < D / 16; kc += 2) {
        unsigned b0, b1, b2, b3;
        const int row = nt * 8 + (lane & 7), col = kc * 16 + (lane >> 3) * 8;
        ldsm_x4(b0, b1, b2, b3, smem_addr(sk + row * LD + col));
        mma_bf16_16816(sc[nt], qf[kc], b0, b1);
        mma_bf16_16816(sc[nt], qf[kc + 1], b2, b3);
      }
    }
    // Mask (only tiles that reach past the block's first query or past kv_end need it).
    if (kb + MMA_BK - 1 > first_pos || kb + MMA_BK > kv_end) {
#pragma unroll
      for (int nt = 0; nt < MMA_BK / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = kb + nt * 8 + (lane & 3) * 2 + (e & 1);
          const int pos = e < 2 ? pos0 : pos1;
          if (j > pos || j >= kv_end) sc[nt][e] = NEG_INF;
        }
      }
    }
    // Online softmax per row (the 4 lanes of a quad share a row).
    float corr[2];
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = NEG_INF;
#pragma unroll
      for (int nt = 0; nt < MMA_BK / 8; ++nt)
        mx = fmaxf(mx, fmaxf(sc[nt][2 * rr], sc[nt][2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[rr], mx);
      const float base = m_new == NEG_INF ? 0.0f : m_new * sl2;
      corr[rr] = exp2f(m_run[rr] * sl2 - base);  // m_run = -inf -> 0
      float rs = 0.0f;
#pragma unroll
      for (int nt = 0; nt < MMA_BK / 8; ++nt) {
#pragma unroll
        for (int e = 2 * rr; e < 2 * rr + 2; ++e) {
          const float p = exp2f(fmaf(sc[nt][e], sl2, -base));  // -inf -> 0
          sc[nt][e] = p;
          rs += p;
        }
      }
      l_run[rr] = l_run[rr] * corr[rr] + rs;  // per-lane partial; quad-reduced at the end
      m_run[rr] = m_new;
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }

    cp_async_wait_all();
    __syncthreads();  // V tile in sv; every warp is done with sk
    if (kb + MMA_BK < kv_end) {
      load_kv_tile<D>(sk, k_cache, table, kb + MMA_BK, kv_end, page_size, n_kv_heads, g);
      cp_async_commit();
    }

    // O += P V: P (16 x 64) from the S accumulators, V (64 x D) via ldmatrix.trans.
#pragma unroll
    for (int kc = 0; kc < MMA_BK / 16; ++kc) {
      unsigned pa[4];
      pa[0] = pack_bf16x2(sc[2 * kc][0], sc[2 * kc][1]);
      pa[1] = pack_bf16x2(sc[2 * kc][2], sc[2 * kc][3]);
      pa[2] = pack_bf16x2(sc[2 * kc + 1][0], sc[2 * kc + 1][1]);
      pa[3] = pack_bf16x2(sc[2 * kc + 1][2], sc[2 * kc + 1][3]);
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        unsigned b0, b1, b2, b3;
        const int row = kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = dt * 8 + (lane >> 4) * 8;
        ldsm_x4_t(b0, b1, b2, b3, smem_addr(sv + row * LD + col));
        mma_bf16_16816(o[dt], pa, b0, b1);
        mma_bf16_16816(o[dt + 1], pa, b2, b3);
      }
    }
  }

  // Normalise and store rows r0 and r0 + 8 (bf16x2 per lane).
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float l = l_run[rr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int tq = tile * MMA_BQ + r0 + 8 * rr;
    if (tq >= q_len) continue;
    bf16* orow = out + ((long long)(q_start + tq) * n_heads + h) * D + (lane & 3) * 2;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const __nv_bfloat162 v = __floats2bfloat162_rn(o[dt][2 * rr] * inv, o[dt][2 * rr + 1] * inv);
      *reinterpret_cast<__nv_bfloat162*>(orow + dt * 8) = v;
    }
  }
}

extern "C" __global__ void __launch_bounds__(MMA_THREADS) paged_attn_prefill_mma_bf16(
    const bf16* __restrict__ q, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
    const int* __restrict__ block_tables, const int* __restrict__ cu_q_lens,
    const int* __restrict__ seq_lens, bf16* __restrict__ out, int n_heads, int n_kv_heads,
    int head_dim, int q_stride, int page_size, int max_pages, float scale) {
  __shared__ __align__(128) bf16 smem[2 * MMA_BK * (MMA_MAXD + MMA_PAD)];
  if (head_dim == 128) {
    prefill_mma_body<128>(q, k_cache, v_cache, block_tables, cu_q_lens, seq_lens, out, n_heads,
                          n_kv_heads, q_stride, page_size, max_pages, scale, smem);
  } else if (head_dim == 64) {
    prefill_mma_body<64>(q, k_cache, v_cache, block_tables, cu_q_lens, seq_lens, out, n_heads,
                         n_kv_heads, q_stride, page_size, max_pages, scale, smem);
  }
}
