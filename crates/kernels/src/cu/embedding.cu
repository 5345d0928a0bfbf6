// embedding.cu: token embedding lookup (gather of table rows).
// Math:   out[t, :] = table[ids[t], :]
// Shapes: table [vocab, hidden] bf16 row-major; ids [n_tokens] i32; out [n_tokens, hidden] bf16.
// Launch: grid (n_tokens), block 256. An id outside [0, vocab) writes a zero row (the launcher
//         cannot see device ids; the tokenizer/engine guarantees range).

extern "C" __global__ void embedding_bf16(const bf16* __restrict__ table,
                                          const int* __restrict__ ids, bf16* __restrict__ out,
                                          int hidden, int vocab) {
  const long long t = blockIdx.x;
  const int id = ids[t];
  const bool in_range = id >= 0 && id < vocab;
  const bf16* src = table + (long long)(in_range ? id : 0) * hidden;
  bf16* dst = out + t * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = in_range ? src[i] : tobf(0.0f);
}
