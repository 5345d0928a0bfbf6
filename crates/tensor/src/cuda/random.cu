// random.cu (arle-tensor's CUDA backend): fills a weight with the deterministic dummy values of
// `--load-format dummy` (arle-models' dummy.rs gives the same values on the host, bit-exact).
// Compiled by NVRTC with arle-kernels' common.cuh prelude (bf16 helpers).
// Math, element i of stream `key` (64-bit wrapping arithmetic, splitmix64 finaliser):
//   z = key + (i + 1) * 0x9E3779B97F4A7C15
//   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;  z ^= z >> 31
//   k = (int)(z >> 56) - 128                    in [-128, 127]
//   out[i] = bf16_rne(center + k * 2^-12)      (the f32 sum is exact; one RNE rounding to bf16)
// Shapes: out [n] bf16, row-major as the host weight. Launch: grid-stride loop, any grid; block
// 256. Indices are 64-bit.

extern "C" __global__ void dummy_fill_bf16(bf16* __restrict__ out, long long n,
                                           unsigned long long key, float center) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    unsigned long long z = key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const int k = (int)(z >> 56) - 128;
    out[i] = tobf(center + (float)k * (1.0f / 4096.0f));
  }
}
