// silu_mul.cu: the SwiGLU activation (MODEL-SPECS §1.4).
// Math:   out[r, c] = bf16( bf16(silu(gate[r, c])) * up[r, c] ),  silu(g) = g / (1 + e^-g), f32.
// Shapes: gate, up [n_rows, inter] with row stride in_stride (a fused [n_rows, 2*inter] gate|up
//         buffer passes in_stride = 2*inter and up = gate + inter); out [n_rows, inter] contiguous.
// Launch: grid-stride, any grid; block 256.

extern "C" __global__ void silu_mul_bf16(const bf16* __restrict__ gate, const bf16* __restrict__ up,
                                         bf16* __restrict__ out, int n_rows, int inter,
                                         int in_stride) {
  const long long total = (long long)n_rows * inter;
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += (long long)gridDim.x * blockDim.x) {
    const long long r = idx / inter, c = idx % inter;
    const float g = bf(gate[r * in_stride + c]);
    out[idx] = tobf(round_bf(silu_f(g)) * bf(up[r * in_stride + c]));
  }
}
