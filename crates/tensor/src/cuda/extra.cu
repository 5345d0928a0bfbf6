// extra.cu (arle-tensor's CUDA backend): small glue kernels the tensor layer needs between the
// arle-kernels ops. Compiled by NVRTC with arle-kernels' common.cuh prelude (bf16 helpers).
// Math and shapes:
//   add_bf16:          x[i] = bf16(x[i] + y[i]),              x, y [n] bf16 (residual add).
//   add_rows_bf16:     x[r, c] = bf16(x[r, c] + b[c]),        x [rows, cols], b [cols] (bias).
//   gather_rows_bf16:  out[i, c] = src[rows[i], c],           src [*, cols], rows [n_out] i32.
//   bf16_to_f32:       out[i] = f32(x[i]),                     [n].
// Launch: grid-stride loops, any grid; block 256. Indices are 64-bit.

extern "C" __global__ void add_bf16(bf16* __restrict__ x, const bf16* __restrict__ y, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    x[i] = tobf(bf(x[i]) + bf(y[i]));
  }
}

extern "C" __global__ void add_rows_bf16(bf16* __restrict__ x, const bf16* __restrict__ b,
                                         long long rows, int cols) {
  const long long n = rows * cols;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    x[i] = tobf(bf(x[i]) + bf(b[i % cols]));
  }
}

extern "C" __global__ void gather_rows_bf16(const bf16* __restrict__ src,
                                            const int* __restrict__ rows, bf16* __restrict__ out,
                                            long long n_out, int cols) {
  const long long n = n_out * cols;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / cols, c = i % cols;
    out[i] = src[(long long)rows[r] * cols + c];
  }
}

extern "C" __global__ void bf16_to_f32(const bf16* __restrict__ x, float* __restrict__ out,
                                       long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    out[i] = bf(x[i]);
  }
}

// sigmoid_mul_bf16 (Qwen3.5 gated attention output gate, appended):
//   out[i] = bf16(x[i] * sigmoid(g[i])),   x, g, out [n] bf16. Grid-stride, block 256.
extern "C" __global__ void sigmoid_mul_bf16(const bf16* __restrict__ x, const bf16* __restrict__ g,
                                            bf16* __restrict__ out, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    out[i] = tobf(bf(x[i]) / (1.0f + expf(-bf(g[i]))));
  }
}
