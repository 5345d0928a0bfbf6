// rope.cu: rotary position embedding, NeoX "rotate_half" pairing, partial rotary (MODEL-SPECS §1.2).
// Math (per token t, head h, i < rot_dim/2, half = rot_dim/2):
//   phi = f32(pos[t]) * inv_freq[i];  c = bf16(cos(phi) * scaling);  s = bf16(sin(phi) * scaling)
//   a = x[i], b = x[i + half]
//   x[i]        = bf16( bf16(a*c) - bf16(b*s) )
//   x[i + half] = bf16( bf16(b*c) + bf16(a*s) )
//   dims rot_dim..head_dim pass through. inv_freq (incl. llama3/linear/yarn scaling) is computed on
//   the host and passed in.
// Shapes: x [n_tokens, n_heads, head_dim] bf16, in place, token stride token_stride (elements; lets
//         q or k live inside a fused qkv row); pos [n_tokens] i32; inv_freq [rot_dim/2] f32.
// Launch: grid (n_tokens), block 128.

extern "C" __global__ void rope_neox_bf16(bf16* __restrict__ x, const int* __restrict__ pos,
                                          const float* __restrict__ inv_freq, int n_heads,
                                          int head_dim, int rot_dim, int token_stride,
                                          float scaling) {
  const long long t = blockIdx.x;
  const int half = rot_dim / 2;
  const float p = (float)pos[t];
  for (int idx = threadIdx.x; idx < n_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    const float phi = p * inv_freq[i];
    const float c = round_bf(cosf(phi) * scaling), s = round_bf(sinf(phi) * scaling);
    bf16* xh = x + t * token_stride + (long long)h * head_dim;
    const float a = bf(xh[i]), b = bf(xh[i + half]);
    xh[i] = tobf(round_bf(a * c) - round_bf(b * s));
    xh[i + half] = tobf(round_bf(b * c) + round_bf(a * s));
  }
}
