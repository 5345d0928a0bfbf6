// gated_delta_net.cu: Gated DeltaNet recurrence (MODEL-SPECS §4.4), decode step and prefill.
// Inputs per token: qkv row [conv_dim] = [ q (Hk*Dk) | k (Hk*Dk) | v (Hv*Dv) ] (after conv+silu,
//   bf16), a, b [Hv] bf16 (raw projections), A_log, dt_bias [Hv] f32. Value head j uses key head
//   j / (Hv / Hk).
// Math (f32): q^ = q * rsqrt(sum q^2 + 1e-6) / sqrt(Dk);  k^ = k * rsqrt(sum k^2 + 1e-6)
//   beta = bf16(sigmoid(b));  g = -exp(A_log) * softplus(a + dt_bias)  (softplus(x) = x for x > 20)
//   S <- e^g S;  m = S^T k^;  delta = beta (v - m);  S <- S + k^ delta^T;  o = S^T q^
// State: state [n_slots, Hv, Dk, Dv] f32 row-major per head (S[i][j] at i*Dv + j); the sequence
//   uses slot state_slots[s]. A fresh sequence's slot must be zeroed by the caller.
// Shapes: qkv [n_tokens, conv_dim] bf16; a, b [n_tokens, Hv] bf16; out [n_tokens, Hv, Dv] bf16.
//   Decode: token s belongs to sequence s. Prefill: cu_seqlens [n_seqs+1] i32, tokens processed in
//   order with the running state (the recurrent form: agrees with the chunked C=64 form to ~1e-5
//   in f32; a chunked tensor-core prefill is the next step).
// Launch: grid (Hv, n_seqs), block 128, dynamic smem 2 * Dk * 4 bytes. Thread j owns column j of S.

DEVI void gdn_token(const bf16* __restrict__ qkv_row, const bf16* __restrict__ a_row,
                    const bf16* __restrict__ b_row, const float* __restrict__ a_log,
                    const float* __restrict__ dt_bias, float* __restrict__ S,
                    bf16* __restrict__ out_row, float* qn, float* kn, int hk, int hv, int dk,
                    int dv, int head) {
  const int kh = head / (hv / hk);
  const bf16* qp = qkv_row + (long long)kh * dk;
  const bf16* kp = qkv_row + (long long)hk * dk + (long long)kh * dk;
  const bf16* vp = qkv_row + 2LL * hk * dk + (long long)head * dv;
  float sq = 0.0f, sk = 0.0f;
  for (int i = threadIdx.x; i < dk; i += blockDim.x) {
    const float qv = bf(qp[i]), kv = bf(kp[i]);
    qn[i] = qv;
    kn[i] = kv;
    sq += qv * qv;
    sk += kv * kv;
  }
  sq = block_sum(sq);
  sk = block_sum(sk);
  const float q_scale = rsqrtf(sq + 1e-6f) / sqrtf((float)dk), k_scale = rsqrtf(sk + 1e-6f);
  for (int i = threadIdx.x; i < dk; i += blockDim.x) {
    qn[i] *= q_scale;
    kn[i] *= k_scale;
  }
  __syncthreads();
  const float beta = round_bf(1.0f / (1.0f + expf(-bf(b_row[head]))));
  const float x = bf(a_row[head]) + dt_bias[head];
  const float softplus = x > 20.0f ? x : log1pf(expf(x));
  const float decay = expf(-expf(a_log[head]) * softplus);
  for (int j = threadIdx.x; j < dv; j += blockDim.x) {
    float m = 0.0f;
    for (int i = 0; i < dk; ++i) m += decay * S[(long long)i * dv + j] * kn[i];
    const float delta = beta * (bf(vp[j]) - m);
    float o = 0.0f;
    for (int i = 0; i < dk; ++i) {
      const float s_new = decay * S[(long long)i * dv + j] + kn[i] * delta;
      S[(long long)i * dv + j] = s_new;
      o += s_new * qn[i];
    }
    out_row[(long long)head * dv + j] = tobf(o);
  }
  __syncthreads();  // qn/kn are reused by the next token
}

extern "C" __global__ void gdn_decode_bf16(const bf16* __restrict__ qkv, const bf16* __restrict__ a,
                                           const bf16* __restrict__ b, const float* __restrict__ a_log,
                                           const float* __restrict__ dt_bias,
                                           float* __restrict__ state, const int* __restrict__ state_slots,
                                           bf16* __restrict__ out, int hk, int hv, int dk, int dv) {
  extern __shared__ float smem[];
  const int head = blockIdx.x, s = blockIdx.y;
  const long long conv_dim = 2LL * hk * dk + (long long)hv * dv;
  float* S = state + (((long long)state_slots[s] * hv) + head) * dk * dv;
  gdn_token(qkv + s * conv_dim, a + (long long)s * hv, b + (long long)s * hv, a_log, dt_bias, S,
            out + (long long)s * hv * dv, smem, smem + dk, hk, hv, dk, dv, head);
}

extern "C" __global__ void gdn_prefill_bf16(const bf16* __restrict__ qkv, const bf16* __restrict__ a,
                                            const bf16* __restrict__ b, const float* __restrict__ a_log,
                                            const float* __restrict__ dt_bias,
                                            float* __restrict__ state,
                                            const int* __restrict__ state_slots,
                                            const int* __restrict__ cu_seqlens, bf16* __restrict__ out,
                                            int hk, int hv, int dk, int dv) {
  extern __shared__ float smem[];
  const int head = blockIdx.x, s = blockIdx.y;
  const long long conv_dim = 2LL * hk * dk + (long long)hv * dv;
  float* S = state + (((long long)state_slots[s] * hv) + head) * dk * dv;
  for (long long t = cu_seqlens[s]; t < cu_seqlens[s + 1]; ++t)
    gdn_token(qkv + t * conv_dim, a + t * hv, b + t * hv, a_log, dt_bias, S, out + t * hv * dv,
              smem, smem + dk, hk, hv, dk, dv, head);
}
