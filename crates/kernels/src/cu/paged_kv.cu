// paged_kv.cu: append new tokens' K and V into the paged KV cache.
// Layout: k_cache, v_cache [num_pages, page_size, n_kv_heads, head_dim] bf16, so a token's slot
//         (page * page_size + offset_in_page) addresses one row of width n_kv_heads * head_dim.
// Math:   k_cache[slot[t], :] = k[t, :];  v_cache[slot[t], :] = v[t, :]
// Shapes: k [n_tokens, n_kv_heads*head_dim] with row stride k_stride; v likewise with v_stride;
//         slot_mapping [n_tokens] i32; a negative slot (padding) or one >= num_slots is skipped.
// Launch: grid (n_tokens), block 128.

extern "C" __global__ void paged_kv_append_bf16(const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                const int* __restrict__ slot_mapping,
                                                bf16* __restrict__ k_cache, bf16* __restrict__ v_cache,
                                                int width, int k_stride, int v_stride,
                                                long long num_slots) {
  const long long t = blockIdx.x;
  const long long slot = slot_mapping[t];
  if (slot < 0 || slot >= num_slots) return;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    k_cache[slot * width + i] = k[t * k_stride + i];
    v_cache[slot * width + i] = v[t * v_stride + i];
  }
}
