// sampling.cu: repetition/presence/frequency penalties and per-request seeded token sampling.
// Penalties (per row r, c_v = occurrences of token v in hist[r, :hist_lens[r]]; the caller decides
//   what the history holds, e.g. prompt + output for repetition as in vLLM):
//   if c_v > 0:  x_v = x_v > 0 ? x_v / rep : x_v * rep;  x_v -= presence + frequency * c_v
// Sampling (per row): temperature <= 0 -> greedy argmax (lowest id on ties). Otherwise
//   p = softmax(x / T) (f32); thresholds on p: tau_k = k-th largest p (top_k > 0), tau_p = the
//   largest p-threshold whose kept mass within the top-k set is >= top_p of that set's mass
//   (top_p < 1), tau_m = min_p * max p (min_p > 0); keep p >= max(tau_k, tau_p, tau_m) (values
//   tied with a threshold are kept); sample by inverse CDF in token-id order with
//   u = philox4x32-10(counter = (offset, 0), key = seed) in [0, 1), u * kept_mass.
//   The same (seed, offset, logits, params) gives the same token regardless of batch position.
// Shapes: logits [n_rows, vocab] f32 (penalties modify in place); counts [n_rows, vocab] i32
//   workspace; hist [n_rows, max_hist] i32; hist_lens, top_k [n_rows] i32; repetition, presence,
//   frequency, temperature, top_p, min_p [n_rows] f32; seed, offset [n_rows] u64;
//   probs [n_rows, vocab] f32 workspace; tokens [n_rows] i32.
// Launch: grid (n_rows), block 1024 for both kernels.

extern "C" __global__ void apply_penalties_f32(float* __restrict__ logits, int* __restrict__ counts,
                                               const int* __restrict__ hist,
                                               const int* __restrict__ hist_lens,
                                               const float* __restrict__ repetition,
                                               const float* __restrict__ presence,
                                               const float* __restrict__ frequency, int vocab,
                                               int max_hist) {
  const long long r = blockIdx.x;
  float* x = logits + r * vocab;
  int* c = counts + r * vocab;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) c[v] = 0;
  __syncthreads();
  const int n = min(hist_lens[r], max_hist);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int tok = hist[r * max_hist + i];
    if (tok >= 0 && tok < vocab) atomicAdd(&c[tok], 1);
  }
  __syncthreads();
  const float rep = repetition[r], pres = presence[r], freq = frequency[r];
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) {
    const int cv = c[v];
    if (cv > 0) {
      float xv = x[v];
      xv = xv > 0.0f ? xv / rep : xv * rep;
      x[v] = xv - pres - freq * (float)cv;
    }
  }
}

DEVI uint4 philox4x32_10(uint4 ctr, uint2 key) {
  const unsigned M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
  for (int i = 0; i < 10; ++i) {
    const unsigned hi0 = __umulhi(M0, ctr.x), lo0 = M0 * ctr.x;
    const unsigned hi1 = __umulhi(M1, ctr.z), lo1 = M1 * ctr.z;
    ctr = make_uint4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    key.x += W0;
    key.y += W1;
  }
  return ctr;
}

DEVI float count_at_least(const float* p, int vocab, unsigned bits, bool mass) {
  float acc = 0.0f;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x)
    if (__float_as_uint(p[v]) >= bits) acc += mass ? p[v] : 1.0f;
  return block_sum(acc);
}

// Exclusive prefix sum over the block (blockDim.x == 1024); *total gets the block total.
DEVI float block_exclusive_scan(float v, float* total) {
  __shared__ float warp_tot[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  float inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) warp_tot[wid] = inc;
  __syncthreads();
  if (wid == 0) {
    float w = warp_tot[lane], wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float n = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += n;
    }
    warp_tot[lane] = wi - w;  // exclusive per warp
    if (lane == 31) *total = wi;
  }
  __syncthreads();
  return warp_tot[wid] + inc - v;
}

extern "C" __global__ void __launch_bounds__(1024) sample_tokens_f32(
    const float* __restrict__ logits, float* __restrict__ probs,
    const float* __restrict__ temperature, const int* __restrict__ top_k,
    const float* __restrict__ top_p, const float* __restrict__ min_p,
    const unsigned long long* __restrict__ seed, const unsigned long long* __restrict__ offset,
    int* __restrict__ tokens, int vocab) {
  __shared__ float sh_total;
  __shared__ int sh_choice;
  __shared__ float sh_bv[32];
  __shared__ int sh_bi[32];
  const long long r = blockIdx.x;
  const float* x = logits + r * vocab;
  float* p = probs + r * vocab;
  const float temp = temperature[r];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (!(temp > 0.0f)) {  // greedy
    float bv = NEG_INF;
    int bi = vocab;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x)
      if (x[v] > bv) { bv = x[v]; bi = v; }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    if (lane == 0) { sh_bv[wid] = bv; sh_bi[wid] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < (int)(blockDim.x >> 5); ++w)
        if (sh_bv[w] > bv || (sh_bv[w] == bv && sh_bi[w] < bi)) { bv = sh_bv[w]; bi = sh_bi[w]; }
      tokens[r] = bi < vocab ? bi : 0;
    }
    return;
  }
  float m = NEG_INF;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) m = fmaxf(m, x[v] / temp);
  m = block_max(m);
  float s = 0.0f;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) {
    const float e = expf(x[v] / temp - m);
    p[v] = e;
    s += e;
  }
  s = block_sum(s);
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) p[v] /= s;
  float p_max = 0.0f;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) p_max = fmaxf(p_max, p[v]);
  p_max = block_max(p_max);  // barrier: p[] complete
  const unsigned max_bits = __float_as_uint(p_max);
  unsigned tau_bits = 0;
  const int k = top_k[r];
  if (k > 0 && k < vocab) {
    unsigned lo = 0, hi = max_bits + 1;
    while (hi - lo > 1) {
      const unsigned mid = lo + (hi - lo) / 2;
      if (count_at_least(p, vocab, mid, false) >= (float)k) lo = mid; else hi = mid;
    }
    tau_bits = lo;
  }
  const float tp = top_p[r];
  if (tp < 1.0f) {
    const float target_mass = tp * count_at_least(p, vocab, tau_bits, true);
    unsigned lo = tau_bits, hi = max_bits + 1;
    while (hi - lo > 1) {
      const unsigned mid = lo + (hi - lo) / 2;
      if (count_at_least(p, vocab, mid, true) >= target_mass) lo = mid; else hi = mid;
    }
    tau_bits = lo;
  }
  const float mp = fminf(min_p[r], 1.0f);
  if (mp > 0.0f) {
    const unsigned mb = __float_as_uint(mp * p_max);
    if (mb > tau_bits) tau_bits = mb;
  }
  // Inverse CDF over kept tokens, in token-id order: thread i owns a contiguous chunk.
  const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int v0 = min(vocab, (int)threadIdx.x * chunk), v1 = min(vocab, v0 + chunk);
  float local = 0.0f;
  int last_kept = -1;
  for (int v = v0; v < v1; ++v)
    if (__float_as_uint(p[v]) >= tau_bits) { local += p[v]; last_kept = v; }
  if (threadIdx.x == 0) sh_choice = -1;
  const float excl = block_exclusive_scan(local, &sh_total);
  const uint4 rnd = philox4x32_10(
      make_uint4((unsigned)offset[r], (unsigned)(offset[r] >> 32), 0u, 0u),
      make_uint2((unsigned)seed[r], (unsigned)(seed[r] >> 32)));
  const float u = (float)(rnd.x >> 8) * (1.0f / 16777216.0f);
  const float target = u * sh_total;
  if (local > 0.0f && excl <= target && target < excl + local) {
    float run = excl;
    for (int v = v0; v < v1; ++v)
      if (__float_as_uint(p[v]) >= tau_bits) {
        run += p[v];
        if (target < run) { sh_choice = v; break; }
      }
  }
  __syncthreads();
  if (sh_choice < 0 && last_kept >= 0) atomicMax(&sh_choice, last_kept);  // rounding fallback
  __syncthreads();
  if (threadIdx.x == 0) tokens[r] = sh_choice >= 0 ? sh_choice : 0;
}
