// moe_experts.cu: the routed experts of the Qwen3.5-MoE sparse MLP (MODEL-SPECS §5.2 steps 2-6),
// entirely on the device: routing decisions never go back to the host.
// Math (per token t, k routed slots r, "pair" i = t*k + r):
//   route:   p = softmax(logits[t]) in f32; top-k of p (descending, ties: lower id first);
//            w[i] = bf16(p_r / sum_{r<k} p_r), rounded to bf16 as HF's bf16 path does (stored as f32).
//   align:   counting sort of the pairs by expert: expert_offsets[e] .. expert_offsets[e+1] are the
//            positions (in sorted order) of the pairs routed to e, sorted_pairs[pos] = i; the pairs
//            of one expert are cut into tiles of MOE_BM rows: tile_expert[j], tile_row[j] (first
//            sorted position); unused tiles up to max_tiles get tile_expert = -1. Pairs with an id
//            outside [0, E) are dropped (not sorted; the combine skips them).
//   gemm:    C[crow(p), n] = bf16( sum_c A[arow(p), c] * W[e, n, c] ) for every sorted position p of
//            expert e, f32 accumulation on bf16 tensor cores (WMMA 16x16x16).
//            arow(p) = sorted_pairs[p] / a_div when a_div > 0 (gather token rows of x), else p;
//            crow(p) = sorted_pairs[p] when c_scatter != 0 (write pair order), else p.
//   combine: routed = bf16( sum_{r: id valid} bf16(w[i] * y[i, h]) ), f32 sum (HF grouped_mm);
//            without a shared expert out[t, h] = routed; with one (HF's bf16 op order)
//            sigma = bf16(sigmoid(bf16(x[t]·wsg))), out[t, h] = bf16(routed + bf16(sigma * s[t, h])).
// Shapes: logits [n, E] bf16; topk_ids [n*k] i32; topk_w [n*k] f32; expert_offsets [E+1] i32;
//   sorted_pairs [n*k] i32; tile_expert, tile_row [max_tiles] i32 with
//   max_tiles = ceil(n*k / MOE_BM) + min(E, n*k); W [E, N, K] bf16 row-major (one expert after
//   the other: gate_up [E, 2*Ie, H], down [E, H, Ie]); A [*, K]; C [*, N]; y [n*k, H] (pair
//   order); x, s, out [n, H] bf16; wsg [H] bf16. E <= 512 (route), <= 1024 (align); k <= 32.
// Launch: route   grid ceil(n/4), block 128 (one warp per token).
//         align   grid 1, block 1024 (one block: counts, serial scan over E, placement).
//         gemm    grid (ceil(N / MOE_BN), max_tiles), block 128 (4 warps, 32x32 each); blocks
//                 whose tile is unused exit at once. Static smem 27.6 KB.
//         combine grid n, block 256 (one block per token; every thread reaches block_sum).

#include <mma.h>

#define MOE_ROUTE_MAX_E 512
#define MOE_ALIGN_MAX_E 1024
#define MOE_BM 64
#define MOE_BN 64
#define MOE_BK 32
#define MOE_LDS (MOE_BK + 8)  // smem row stride of the A/B tiles (bf16): 80 bytes
#define MOE_LDC (MOE_BN + 4)  // smem row stride of the accumulator tile (f32)

extern "C" __global__ void moe_topk_softmax_f32w(const bf16* __restrict__ logits,
                                                 int* __restrict__ topk_ids,
                                                 float* __restrict__ topk_weights, int n_tokens,
                                                 int n_experts, int k) {
  __shared__ float probs[4][MOE_ROUTE_MAX_E];
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
    if (lane == r) mine = bv;
    if (lane == 0) topk_ids[t * k + r] = bi;
    picked_sum += bv;
    __syncwarp();
    if (bi < n_experts && lane == (bi & 31)) p[bi] = -2.0f;  // taken
    __syncwarp();
  }
  if (lane < k) topk_weights[t * k + lane] = round_bf(mine / picked_sum);
}

extern "C" __global__ void moe_align(const int* __restrict__ topk_ids, int n_pairs,
                                     int n_experts, int max_tiles,
                                     int* __restrict__ expert_offsets,
                                     int* __restrict__ sorted_pairs,
                                     int* __restrict__ tile_expert, int* __restrict__ tile_row) {
  __shared__ int counts[MOE_ALIGN_MAX_E];
  __shared__ int cursor[MOE_ALIGN_MAX_E];
  __shared__ int first_tile[MOE_ALIGN_MAX_E + 1];
  __shared__ int n_sorted;
  const int tid = threadIdx.x, nt = blockDim.x;
  for (int e = tid; e < n_experts; e += nt) counts[e] = 0;
  __syncthreads();
  for (int i = tid; i < n_pairs; i += nt) {
    const int id = topk_ids[i];
    if (id >= 0 && id < n_experts) atomicAdd(&counts[id], 1);
  }
  __syncthreads();
  if (tid == 0) {
    int run = 0, tiles = 0;
    for (int e = 0; e < n_experts; ++e) {
      cursor[e] = run;
      expert_offsets[e] = run;
      first_tile[e] = tiles;
      run += counts[e];
      tiles += (counts[e] + MOE_BM - 1) / MOE_BM;
    }
    expert_offsets[n_experts] = run;
    first_tile[n_experts] = tiles;
    n_sorted = run;
  }
  __syncthreads();
  for (int i = tid; i < n_pairs; i += nt) {
    const int id = topk_ids[i];
    if (id >= 0 && id < n_experts) sorted_pairs[atomicAdd(&cursor[id], 1)] = i;
  }
  for (int p = n_sorted + tid; p < n_pairs; p += nt) sorted_pairs[p] = -1;  // dropped pairs
  for (int e = tid; e < n_experts; e += nt) {
    const int n_tiles = first_tile[e + 1] - first_tile[e];
    for (int j = 0; j < n_tiles; ++j) {
      const int tile = first_tile[e] + j;
      if (tile < max_tiles) {
        tile_expert[tile] = e;
        tile_row[tile] = expert_offsets[e] + j * MOE_BM;
      }
    }
  }
  for (int tile = first_tile[n_experts] + tid; tile < max_tiles; tile += nt) {
    tile_expert[tile] = -1;
    tile_row[tile] = 0;
  }
}

// Loads rows `rows[r]` (or zeros for rows[r] < 0 / columns >= K) of a [*, K] bf16 matrix,
// columns k0 .. k0+MOE_BK, into a [MOE_BM][MOE_LDS] smem tile. vec: K % 8 == 0 and 16-byte
// aligned base, so every 8-wide chunk is either fully inside or fully outside the row.
DEVI void moe_load_tile(bf16 (*tile)[MOE_LDS], const bf16* __restrict__ src, const int* rows,
                        int K, int k0, bool vec) {
  const bf16 zero = tobf(0.0f);
  if (vec) {
    for (int idx = threadIdx.x; idx < MOE_BM * (MOE_BK / 8); idx += blockDim.x) {
      const int r = idx / (MOE_BK / 8), c = (idx % (MOE_BK / 8)) * 8;
      const int row = rows[r], kk = k0 + c;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (row >= 0 && kk < K) v = *reinterpret_cast<const uint4*>(src + (long long)row * K + kk);
      *reinterpret_cast<uint4*>(&tile[r][c]) = v;
    }
  } else {
    for (int idx = threadIdx.x; idx < MOE_BM * MOE_BK; idx += blockDim.x) {
      const int r = idx / MOE_BK, c = idx % MOE_BK;
      const int row = rows[r], kk = k0 + c;
      tile[r][c] = (row >= 0 && kk < K) ? src[(long long)row * K + kk] : zero;
    }
  }
}

extern "C" __global__ __launch_bounds__(128) void moe_grouped_gemm_bf16(
    const bf16* __restrict__ A, const bf16* __restrict__ W, bf16* __restrict__ C,
    const int* __restrict__ sorted_pairs, const int* __restrict__ expert_offsets,
    const int* __restrict__ tile_expert, const int* __restrict__ tile_row, int N, int K, int a_div,
    int c_scatter) {
  using namespace nvcuda;
  __shared__ __align__(32) bf16 As[MOE_BM][MOE_LDS];
  __shared__ __align__(32) bf16 Bs[MOE_BN][MOE_LDS];
  __shared__ __align__(32) float Cs[MOE_BM][MOE_LDC];
  __shared__ int a_rows[MOE_BM], b_rows[MOE_BN], c_rows[MOE_BM];
  const int tile = blockIdx.y;
  const int e = tile_expert[tile];
  if (e < 0) return;  // uniform for the block; no barrier reached yet
  const int row0 = tile_row[tile];
  const int n_rows = min(MOE_BM, expert_offsets[e + 1] - row0);
  const int n0 = blockIdx.x * MOE_BN;
  const bf16* We = W + (long long)e * N * K;
  for (int r = threadIdx.x; r < MOE_BM; r += blockDim.x) {
    int ar = -1, cr = -1;
    if (r < n_rows) {
      const int p = row0 + r, pair = sorted_pairs[p];
      ar = a_div > 0 ? pair / a_div : p;
      cr = c_scatter ? pair : p;
    }
    a_rows[r] = ar;
    c_rows[r] = cr;
  }
  for (int r = threadIdx.x; r < MOE_BN; r += blockDim.x) b_rows[r] = n0 + r < N ? n0 + r : -1;
  const bool vec = (K % 8 == 0) &&
                   ((((unsigned long long)A) | ((unsigned long long)W)) & 15ull) == 0ull;
  const int warp = threadIdx.x >> 5, wm = warp >> 1, wn = warp & 1;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  __syncthreads();
  for (int k0 = 0; k0 < K; k0 += MOE_BK) {
    moe_load_tile(As, A, a_rows, K, k0, vec);
    moe_load_tile(Bs, We, b_rows, K, k0, vec);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < MOE_BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &As[wm * 32 + i * 16][kk], MOE_LDS);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &Bs[wn * 32 + j * 16][kk], MOE_LDS);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], MOE_LDC,
                              wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < MOE_BM * MOE_BN; idx += blockDim.x) {
    const int r = idx / MOE_BN, c = idx % MOE_BN;
    if (r < n_rows && n0 + c < N) C[(long long)c_rows[r] * N + n0 + c] = tobf(Cs[r][c]);
  }
}

extern "C" __global__ void moe_combine_bf16(const bf16* __restrict__ y,
                                            const int* __restrict__ topk_ids,
                                            const float* __restrict__ topk_weights,
                                            const bf16* __restrict__ x,
                                            const bf16* __restrict__ shared_gate_w,
                                            const bf16* __restrict__ shared_out,
                                            bf16* __restrict__ out, int hidden, int k,
                                            int n_experts, int has_shared) {
  const long long t = blockIdx.x;
  float sigma = 0.0f;
  if (has_shared) {
    float dot = 0.0f;
    for (int h = threadIdx.x; h < hidden; h += blockDim.x)
      dot += bf(x[t * hidden + h]) * bf(shared_gate_w[h]);
    dot = block_sum(dot);  // uniform branch: every thread of the block calls it
    sigma = round_bf(1.0f / (1.0f + expf(-round_bf(dot))));
  }
  for (int h = threadIdx.x; h < hidden; h += blockDim.x) {
    float acc = 0.0f;
    for (int r = 0; r < k; ++r) {
      const long long i = t * k + r;
      const int id = topk_ids[i];
      if (id >= 0 && id < n_experts) acc += round_bf(topk_weights[i] * bf(y[i * hidden + h]));
    }
    if (has_shared) acc = round_bf(acc) + round_bf(sigma * bf(shared_out[t * hidden + h]));
    out[t * hidden + h] = tobf(acc);
  }
}
