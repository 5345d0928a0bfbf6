// rms_norm.cu: the three RMSNorm variants of MODEL-SPECS §1.1, plus a fused residual add.
// Math (per row x of length dim, r = rsqrt(mean(x^2) + eps), all in f32):
//   plain (mode 0):        y = bf16( w * bf16(x * r) )           (llama, qwen3)
//   zero-centred (mode 1): y = bf16( x * r * (1 + w) )           (qwen3_5 (1+w) norms)
//   gated:                 y = bf16( bf16(w * bf16(x * r)) * silu(z) )   (qwen3_5 GDN output)
//   add + norm:            residual = bf16(residual + x); y = norm(residual)   (modes 0/1)
// Shapes: x [n_rows, dim] with row stride x_stride (elements); w [dim] bf16; out [n_rows, dim]
//         with row stride out_stride; z [n_rows, dim] contiguous; residual [n_rows, dim].
// Launch: grid (n_rows), block 256 (multiple of 32). One block normalises one row.

DEVI float norm_apply(float x_scaled, float w, int mode) {
  return mode == 0 ? w * round_bf(x_scaled) : x_scaled * (1.0f + w);
}

extern "C" __global__ void rms_norm_bf16(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                         bf16* __restrict__ out, int dim, int x_stride,
                                         int out_stride, float eps, int mode) {
  const bf16* xr = x + (long long)blockIdx.x * x_stride;
  bf16* yr = out + (long long)blockIdx.x * out_stride;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = bf(xr[i]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float r = rsqrtf(ss / (float)dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = tobf(norm_apply(bf(xr[i]) * r, bf(w[i]), mode));
}

extern "C" __global__ void add_rms_norm_bf16(const bf16* __restrict__ x, bf16* __restrict__ residual,
                                             const bf16* __restrict__ w, bf16* __restrict__ out,
                                             int dim, float eps, int mode) {
  const long long base = (long long)blockIdx.x * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = round_bf(bf(x[base + i]) + bf(residual[base + i]));
    residual[base + i] = tobf(v);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float r = rsqrtf(ss / (float)dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    out[base + i] = tobf(norm_apply(bf(residual[base + i]) * r, bf(w[i]), mode));
}

extern "C" __global__ void rms_norm_gated_bf16(const bf16* __restrict__ x, const bf16* __restrict__ z,
                                               const bf16* __restrict__ w, bf16* __restrict__ out,
                                               int dim, float eps) {
  const long long base = (long long)blockIdx.x * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = bf(x[base + i]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float r = rsqrtf(ss / (float)dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float normed = round_bf(bf(w[i]) * round_bf(bf(x[base + i]) * r));
    out[base + i] = tobf(normed * silu_f(bf(z[base + i])));
  }
}
