// gdn_chunked.cu: Gated DeltaNet prefill in HF's chunked form (MODEL-SPECS §4.4 step 7), C = 64.
// Inputs/outputs/state exactly as gdn_prefill_bf16 (gated_delta_net.cu): qkv [n_tokens, conv_dim]
//   bf16 = [ q (Hk*Dk) | k (Hk*Dk) | v (Hv*Dv) ] after conv+silu; a, b [n_tokens, Hv] bf16 (raw);
//   A_log, dt_bias [Hv] f32; state [n_slots, Hv, Dk, Dv] f32 (S[i][j] at i*Dv + j), sequence s uses
//   slot state_slots[s]; cu_seqlens [n_seqs+1] i32; out [n_tokens, Hv, Dv] bf16. Value head j uses
//   key head j / (Hv / Hk).
// Gates (as gated_delta_net.cu): beta = bf16(sigmoid(b)); g = -exp(A_log) * softplus(a + dt_bias)
//   (softplus(x) = x for x > 20). q^ = (q / sqrt(sum q^2 + 1e-6)) * Dk^-0.5, k^ = k / sqrt(sum k^2 + 1e-6).
// Per chunk of C tokens counted from the sequence's first row (tail chunk padded with zero rows,
// which contribute nothing; gamma of padded rows = gamma of the last real row), all f32:
//   gamma_i = inclusive cumsum of g;  A_ij = beta_i (k^_i . k^_j) exp(gamma_i - gamma_j), j < i
//   U = L^-1 (beta v), W = L^-1 (beta e^gamma k^) by forward substitution (L = I + A)
//   V' = U - W S;  P_ij = (q^_i . k^_j) exp(gamma_i - gamma_j), j <= i
//   O = (e^gamma q^) S + P V';  S <- e^gamma_last S + (e^(gamma_last - gamma) k^)^T V'
// single_recurrent != 0: a sequence of exactly one token runs one recurrence step instead (the
//   decode step of gated_delta_net.cu, q divided by sqrt(Dk)), so decode rows may share a launch.
// Launch: grid (Hv, n_seqs), block GDNC_THREADS (256), dynamic smem gdnc_smem_floats * 4 bytes
//   (215,040 bytes at Dk = Dv = 128; the launcher raises the function's dynamic-smem limit).
// Shared layout (floats): S [Dk*Dv] | Q, K, W [C, Dk+1] | U [C, Dv+1] | A [C, C] (then P) |
//   gamma, e^gamma, beta, e^(gamma_last - gamma) [C] each. Rows padded by one float (bank conflicts).
// Threads: row loads one warp per row; forward substitution one thread per column of U|W; the
//   three matmuls one thread per (8-row block, column) with 8 accumulators in registers.

#define GDNC_C 64
#define GDNC_R 8
#define GDNC_THREADS 256

// One recurrence step on the global state column-owned by threads (gated_delta_net.cu gdn_token).
DEVI void gdnc_token(const bf16* __restrict__ qkv_row, const bf16* __restrict__ a_row,
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
}

extern "C" __global__ void gdn_chunked_prefill_bf16(
    const bf16* __restrict__ qkv, const bf16* __restrict__ a, const bf16* __restrict__ b,
    const float* __restrict__ a_log, const float* __restrict__ dt_bias, float* __restrict__ state,
    const int* __restrict__ state_slots, const int* __restrict__ cu_seqlens,
    bf16* __restrict__ out, int hk, int hv, int dk, int dv, int single_recurrent) {
  extern __shared__ float smem[];
  const int head = blockIdx.x, s = blockIdx.y;
  const int tid = threadIdx.x, nthr = blockDim.x;
  const int warp = tid >> 5, lane = tid & 31, nwarps = nthr >> 5;
  const int kh = head / (hv / hk);
  const long long conv_dim = 2LL * hk * dk + (long long)hv * dv;
  const long long t_begin = cu_seqlens[s], t_end = cu_seqlens[s + 1];
  float* Sg = state + (((long long)state_slots[s] * hv) + head) * dk * dv;
  if (t_end <= t_begin) return;  // uniform over the block
  if (single_recurrent && t_end - t_begin == 1) {
    gdnc_token(qkv + t_begin * conv_dim, a + t_begin * hv, b + t_begin * hv, a_log, dt_bias, Sg,
               out + t_begin * hv * dv, smem, smem + dk, hk, hv, dk, dv, head);
    return;
  }
  const int C = GDNC_C, ldk = dk + 1, ldv = dv + 1;
  float* S = smem;                    // [dk, dv]
  float* Q = S + dk * dv;             // [C, ldk]
  float* K = Q + C * ldk;             // [C, ldk]
  float* W = K + C * ldk;             // [C, ldk]
  float* U = W + C * ldk;             // [C, ldv]: v, then U, then V'
  float* A = U + C * ldv;             // [C, C]: A, then P
  float* gam = A + C * C;             // [C]
  float* eg = gam + C;                // [C]
  float* bet = eg + C;                // [C]
  float* cdec = bet + C;              // [C]
  const float neg_a = -expf(a_log[head]), dtb = dt_bias[head];
  const float q_scale = (float)(1.0 / sqrt((double)dk));
  for (int e = tid; e < dk * dv; e += nthr) S[e] = Sg[e];
  for (long long t0 = t_begin; t0 < t_end; t0 += C) {
    const int len = (int)min((long long)C, t_end - t0);
    __syncthreads();  // S loaded / previous chunk finished with every buffer
    // Rows: normalised q^, k^ and raw v; zero rows past len.
    for (int i = warp; i < C; i += nwarps) {
      float* qi = Q + i * ldk;
      float* ki = K + i * ldk;
      float* ui = U + i * ldv;
      if (i < len) {
        const bf16* row = qkv + (t0 + i) * conv_dim;
        const bf16* qp = row + (long long)kh * dk;
        const bf16* kp = row + (long long)hk * dk + (long long)kh * dk;
        const bf16* vp = row + 2LL * hk * dk + (long long)head * dv;
        float sq = 0.0f, sk = 0.0f;
        for (int c = lane; c < dk; c += 32) {
          const float qv = bf(qp[c]), kv = bf(kp[c]);
          qi[c] = qv;
          ki[c] = kv;
          sq += qv * qv;
          sk += kv * kv;
        }
        sq = warp_sum(sq);
        sk = warp_sum(sk);
        const float iq = 1.0f / sqrtf(sq + 1e-6f), ik = 1.0f / sqrtf(sk + 1e-6f);
        for (int c = lane; c < dk; c += 32) {
          qi[c] = (qi[c] * iq) * q_scale;
          ki[c] = ki[c] * ik;
        }
        for (int c = lane; c < dv; c += 32) ui[c] = bf(vp[c]);
      } else {
        for (int c = lane; c < dk; c += 32) {
          qi[c] = 0.0f;
          ki[c] = 0.0f;
        }
        for (int c = lane; c < dv; c += 32) ui[c] = 0.0f;
      }
    }
    // Gates (padded rows: g = 0, beta = 0).
    for (int i = tid; i < C; i += nthr) {
      float g = 0.0f, be = 0.0f;
      if (i < len) {
        const long long t = t0 + i;
        be = round_bf(1.0f / (1.0f + expf(-bf(b[t * hv + head]))));
        const float x = bf(a[t * hv + head]) + dtb;
        const float sp = x > 20.0f ? x : log1pf(expf(x));
        g = neg_a * sp;
      }
      gam[i] = g;
      bet[i] = be;
    }
    __syncthreads();
    if (tid == 0) {
      float acc = 0.0f;
      for (int i = 0; i < C; ++i) {
        acc += gam[i];
        gam[i] = acc;
      }
    }
    __syncthreads();
    for (int i = tid; i < C; i += nthr) {
      eg[i] = expf(gam[i]);
      cdec[i] = expf(gam[C - 1] - gam[i]);
    }
    // A_ij = beta_i (k^_i . k^_j) exp(gamma_i - gamma_j), strictly lower; zero elsewhere.
    for (int e = tid; e < C * C; e += nthr) {
      const int i = e / C, j = e % C;
      float v = 0.0f;
      if (j < i && i < len) {
        const float* ki = K + i * ldk;
        const float* kj = K + j * ldk;
        float d = 0.0f;
        for (int c = 0; c < dk; ++c) d += ki[c] * kj[c];
        v = (d * bet[i]) * expf(gam[i] - gam[j]);
      }
      A[e] = v;
    }
    __syncthreads();
    // Forward substitution, one thread per column of U (c < dv) or W (c >= dv); a column only
    // reads its own earlier rows, so no barrier inside.
    for (int col = tid; col < dv + dk; col += nthr) {
      if (col < dv) {
        for (int i = 0; i < len; ++i) {
          float u = U[i * ldv + col] * bet[i];
          for (int j = 0; j < i; ++j) u -= A[i * C + j] * U[j * ldv + col];
          U[i * ldv + col] = u;
        }
      } else {
        const int c = col - dv;
        for (int i = 0; i < C; ++i) {
          float w = 0.0f;
          if (i < len) {
            w = (K[i * ldk + c] * bet[i]) * eg[i];
            for (int j = 0; j < i; ++j) w -= A[i * C + j] * W[j * ldk + c];
          }
          W[i * ldk + c] = w;
        }
      }
    }
    __syncthreads();
    const int n_rb = (len + GDNC_R - 1) / GDNC_R;
    // V' = U - W S (rows past len stay 0 - 0).
    for (int item = tid; item < n_rb * dv; item += nthr) {
      const int r0 = (item / dv) * GDNC_R, j = item % dv;
      float acc[GDNC_R];
#pragma unroll
      for (int r = 0; r < GDNC_R; ++r) acc[r] = U[(r0 + r) * ldv + j];
      for (int c = 0; c < dk; ++c) {
        const float sv = S[c * dv + j];
#pragma unroll
        for (int r = 0; r < GDNC_R; ++r) acc[r] -= W[(r0 + r) * ldk + c] * sv;
      }
#pragma unroll
      for (int r = 0; r < GDNC_R; ++r) U[(r0 + r) * ldv + j] = acc[r];
    }
    // P_ij = (q^_i . k^_j) exp(gamma_i - gamma_j), j <= i, into A (A is no longer read).
    for (int e = tid; e < C * C; e += nthr) {
      const int i = e / C, j = e % C;
      float v = 0.0f;
      if (j <= i && i < len) {
        const float* qi = Q + i * ldk;
        const float* kj = K + j * ldk;
        float d = 0.0f;
        for (int c = 0; c < dk; ++c) d += qi[c] * kj[c];
        v = d * expf(gam[i] - gam[j]);
      }
      A[e] = v;
    }
    __syncthreads();
    // O = (e^gamma q^) S + P V'.
    for (int item = tid; item < n_rb * dv; item += nthr) {
      const int r0 = (item / dv) * GDNC_R, j = item % dv;
      float inter[GDNC_R], intra[GDNC_R];
#pragma unroll
      for (int r = 0; r < GDNC_R; ++r) {
        inter[r] = 0.0f;
        intra[r] = 0.0f;
      }
      for (int c = 0; c < dk; ++c) {
        const float sv = S[c * dv + j];
#pragma unroll
        for (int r = 0; r < GDNC_R; ++r) inter[r] += (Q[(r0 + r) * ldk + c] * eg[r0 + r]) * sv;
      }
      const int jmax = min(r0 + GDNC_R, len);
      for (int jj = 0; jj < jmax; ++jj) {
        const float uv = U[jj * ldv + j];
#pragma unroll
        for (int r = 0; r < GDNC_R; ++r) intra[r] += A[(r0 + r) * C + jj] * uv;
      }
#pragma unroll
      for (int r = 0; r < GDNC_R; ++r)
        if (r0 + r < len)
          out[(t0 + r0 + r) * hv * dv + (long long)head * dv + j] = tobf(inter[r] + intra[r]);
    }
    __syncthreads();  // S is read above and rewritten below
    // S <- e^gamma_last S + (e^(gamma_last - gamma) k^)^T V'.
    const float dlast = expf(gam[C - 1]);
    const int n_cb = (dk + GDNC_R - 1) / GDNC_R;
    for (int item = tid; item < n_cb * dv; item += nthr) {
      const int c0 = (item / dv) * GDNC_R, j = item % dv;
      const int nr = min(GDNC_R, dk - c0);
      float acc[GDNC_R];
#pragma unroll
      for (int r = 0; r < GDNC_R; ++r) acc[r] = r < nr ? dlast * S[(c0 + r) * dv + j] : 0.0f;
      for (int i = 0; i < len; ++i) {
        const float uv = U[i * ldv + j], ci = cdec[i];
#pragma unroll
        for (int r = 0; r < GDNC_R; ++r)
          if (r < nr) acc[r] += (K[i * ldk + c0 + r] * ci) * uv;
      }
#pragma unroll
      for (int r = 0; r < GDNC_R; ++r)
        if (r < nr) S[(c0 + r) * dv + j] = acc[r];
    }
  }
  __syncthreads();
  for (int e = tid; e < dk * dv; e += nthr) Sg[e] = S[e];
}
