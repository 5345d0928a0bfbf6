// logprobs.cu: logits -> log-probabilities (log-softmax over the vocabulary), f32 out.
// Math (per row): lse = m + log(sum_v e^(x_v - m)), m = max_v x_v;  out_v = x_v - lse.
// Shapes: logits [n_rows, vocab] bf16 or f32; out [n_rows, vocab] f32.
// Launch: grid (n_rows), block 1024.

template <typename T> DEVI float load_f(const T* p, long long i);
template <> DEVI float load_f<float>(const float* p, long long i) { return p[i]; }
template <> DEVI float load_f<bf16>(const bf16* p, long long i) { return bf(p[i]); }

template <typename T>
DEVI void log_softmax_row(const T* __restrict__ logits, float* __restrict__ out, int vocab) {
  const long long base = (long long)blockIdx.x * vocab;
  float m = NEG_INF;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) m = fmaxf(m, load_f(logits, base + v));
  m = block_max(m);
  float s = 0.0f;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) s += expf(load_f(logits, base + v) - m);
  s = block_sum(s);
  const float lse = m + logf(s);
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) out[base + v] = load_f(logits, base + v) - lse;
}

extern "C" __global__ void log_softmax_bf16(const bf16* __restrict__ logits, float* __restrict__ out,
                                            int vocab) {
  log_softmax_row(logits, out, vocab);
}
extern "C" __global__ void log_softmax_f32(const float* __restrict__ logits, float* __restrict__ out,
                                           int vocab) {
  log_softmax_row(logits, out, vocab);
}
