//! The block decoders and row drivers shared by every SIMD instruction set, written once
//! against a small set of vector primitives and stamped out per ISA by [`simd_kernels!`].
//!
//! A decoder unpacks one block straight into registers: it hands each group of `LANES`
//! consecutive weights, as one f32 vector, to a sink `sink(k, e0, w)` where `e0` is the index
//! of the group's first value in the block and `k = (e0 % 32) / LANES` names an accumulator.
//! The sink stores the vector (dequantise) or multiply-adds it against activations (dot);
//! after inlining, no block is ever written to memory on the dot path.
//!
//! Each weight is computed with the same f32 operations, in the same order, as the scalar
//! decoders (products rounded before offsets are applied; no fused multiply-add), so every
//! ISA dequantises bit-exactly. See `super::super::{legacy, kquants}` for the layouts.
//!
//! The invoking module provides: vector types `F` (f32 lanes) and `I` (i32 lanes), `LANES`
//! (8 or 16), and `#[inline]` primitives `zero, splat, splat_i, iota, ld_u8, ld_i8, ld_f16,
//! ld_bf16, ldx, st, srl, sll, srlv, and, or, xor, sub_i, to_f, mul, add, sub, fmadd, hsum,
//! f16_splat, table16, lookup16` (and the table type `T`), all compiled for the ISA's target
//! features.

/// Stamps out the decoders and drivers for one ISA whose target features are `$features`.
macro_rules! simd_kernels {
    ($features:literal) => {
        use crate::dtype::QK_K;

        /// Accumulators per 32-value group (one per vector of the group).
        const GROUPS: usize = 32 / LANES;

        /// One block format: its sizes and its register decoder.
        pub(super) trait Block {
            const ELEMS: usize;
            const BYTES: usize;
            /// Emits the block at `b` (`BYTES` readable bytes) as `ELEMS / LANES` vectors.
            ///
            /// # Safety
            /// The CPU has `$features`; `b` points to `BYTES` readable bytes.
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S);
        }

        /// Emits `ELEMS` weights as `sink(k, e0, w)` for `e0` in steps of `LANES`.
        macro_rules! groups {
            ($elems:expr, |$k:ident, $e0:ident| $w:expr, $sink:ident) => {
                for sb in 0..$elems / 32 {
                    for $k in 0..GROUPS {
                        let $e0 = sb * 32 + $k * LANES;
                        let w = $w;
                        $sink($k, $e0, w);
                    }
                }
            };
        }

        /// The 4-bit values `e0..e0 + LANES` of a 16-byte low/high nibble array at `qs`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn nibbles(qs: *const u8, e0: usize) -> I {
            // SAFETY: e0 < 32 and e0 % 16 + LANES <= 16, so the load stays in the 16 bytes.
            let raw = unsafe { ld_u8(qs.add(e0 % 16)) };
            and(srl(raw, 4 * (e0 / 16) as u32), splat_i(0x0F))
        }

        /// Like [`nibbles`] but without masking: the low 4 bits of each lane hold the nibble,
        /// the bits above are garbage (for [`lookup16`], which ignores them).
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn raw_nibbles(qs: *const u8, e0: usize) -> I {
            // SAFETY: as in `nibbles`.
            srl(unsafe { ld_u8(qs.add(e0 % 16)) }, 4 * (e0 / 16) as u32)
        }

        /// Bit `e0 + lane` of `bits`, per lane (lanes past bit 31 read 0).
        #[inline]
        #[target_feature(enable = $features)]
        fn bit_lanes(bits: u32, e0: usize) -> I {
            and(srlv(splat_i((bits >> e0) as i32), iota()), splat_i(1))
        }

        pub(super) struct Q4_0;
        impl Block for Q4_0 {
            const ELEMS: usize = 32;
            const BYTES: usize = 18;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 18-byte block (see nibbles).
                let d = unsafe { f16_splat(b, 0) };
                // w(q) = d · (q - 8), tabulated once per block.
                let table = table16(|q| mul(d, sub(q, splat(8.0))));
                groups!(32, |k, e0| lookup16(table, unsafe { raw_nibbles(b.add(2), e0) }), sink);
            }
        }

        pub(super) struct Q4_1;
        impl Block for Q4_1 {
            const ELEMS: usize = 32;
            const BYTES: usize = 20;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 20-byte block.
                let (d, m) = unsafe { (f16_splat(b, 0), f16_splat(b, 2)) };
                // w(q) = d · q + m, tabulated once per block.
                let table = table16(|q| add(mul(d, q), m));
                groups!(32, |k, e0| lookup16(table, unsafe { raw_nibbles(b.add(4), e0) }), sink);
            }
        }

        pub(super) struct Q5_0;
        impl Block for Q5_0 {
            const ELEMS: usize = 32;
            const BYTES: usize = 22;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 22-byte block.
                let d = unsafe { f16_splat(b, 0) };
                let qh = unsafe { b.add(2).cast::<u32>().read_unaligned() }.to_le();
                groups!(32, |k, e0| {
                    let low = unsafe { nibbles(b.add(6), e0) };
                    let q = or(low, sll(bit_lanes(qh, e0), 4));
                    mul(d, to_f(sub_i(q, splat_i(16))))
                }, sink);
            }
        }

        pub(super) struct Q5_1;
        impl Block for Q5_1 {
            const ELEMS: usize = 32;
            const BYTES: usize = 24;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 24-byte block.
                let (d, m) = unsafe { (f16_splat(b, 0), f16_splat(b, 2)) };
                let qh = unsafe { b.add(4).cast::<u32>().read_unaligned() }.to_le();
                groups!(32, |k, e0| {
                    let low = unsafe { nibbles(b.add(8), e0) };
                    add(mul(d, to_f(or(low, sll(bit_lanes(qh, e0), 4)))), m)
                }, sink);
            }
        }

        pub(super) struct Q8_0;
        impl Block for Q8_0 {
            const ELEMS: usize = 32;
            const BYTES: usize = 34;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): bytes 2 + e0 .. 2 + e0 + LANES are inside the block.
                let d = unsafe { f16_splat(b, 0) };
                groups!(32, |k, e0| mul(to_f(unsafe { ld_i8(b.add(2 + e0)) }), d), sink);
            }
        }

        /// The 2-bit values `e0..e0 + LANES` of a q2_k/q3_k `qs[64]` array at `qs`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn crumbs(qs: *const u8, e0: usize) -> I {
            // SAFETY: 32·(e0/128) + e0 % 32 + LANES <= 64.
            let raw = unsafe { ld_u8(qs.add(32 * (e0 / 128) + e0 % 32)) };
            and(srl(raw, 2 * ((e0 / 32) % 4) as u32), splat_i(0x03))
        }

        /// The 4-bit values `e0..e0 + LANES` of a q4_k/q5_k `qs[128]` array at `qs`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn k_nibbles(qs: *const u8, e0: usize) -> I {
            // SAFETY: 32·(e0/64) + e0 % 32 + LANES <= 128.
            let raw = unsafe { ld_u8(qs.add(32 * (e0 / 64) + e0 % 32)) };
            and(srl(raw, 4 * ((e0 / 32) % 2) as u32), splat_i(0x0F))
        }

        /// Bit `e0 / 32` of the bytes `hbits[e0 % 32 ..][..LANES]` (q3_k hmask, q5_k qh).
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn plane_bits(hbits: *const u8, e0: usize) -> I {
            // SAFETY: e0 % 32 + LANES <= 32.
            let raw = unsafe { ld_u8(hbits.add(e0 % 32)) };
            and(srl(raw, (e0 / 32) as u32), splat_i(1))
        }

        pub(super) struct Q2K;
        impl Block for Q2K {
            const ELEMS: usize = QK_K;
            const BYTES: usize = 84;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 84-byte block.
                let (d, dmin) = unsafe { (f16_splat(b, 80), f16_splat(b, 82)) };
                groups!(QK_K, |k, e0| {
                    let s = unsafe { *b.add(e0 / 16) };
                    let dl = mul(d, splat((s & 0x0F) as f32));
                    let ml = mul(dmin, splat((s >> 4) as f32));
                    let q = unsafe { crumbs(b.add(16), e0) };
                    sub(mul(dl, to_f(q)), ml)
                }, sink);
            }
        }

        pub(super) struct Q3K;
        impl Block for Q3K {
            const ELEMS: usize = QK_K;
            const BYTES: usize = 110;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 110-byte block.
                let d = unsafe { f16_splat(b, 108) };
                let scales = unsafe { &*b.add(96).cast::<[u8; 12]>() };
                let scales = crate::quant::kquants::q3k_scales(scales);
                groups!(QK_K, |k, e0| {
                    let dl = mul(d, splat(scales[e0 / 16] as f32));
                    let low = unsafe { crumbs(b.add(32), e0) };
                    let high = unsafe { plane_bits(b, e0) };
                    let q = sub_i(low, sll(xor(high, splat_i(1)), 2));
                    mul(dl, to_f(q))
                }, sink);
            }
        }

        pub(super) struct Q4K;
        impl Block for Q4K {
            const ELEMS: usize = QK_K;
            const BYTES: usize = 144;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 144-byte block.
                let (d, dmin) = unsafe { (f16_splat(b, 0), f16_splat(b, 2)) };
                let (sc, mn) = crate::quant::kquants::q4k_scale_min(unsafe {
                    &*b.add(4).cast::<[u8; 12]>()
                });
                groups!(QK_K, |k, e0| {
                    let dl = mul(d, splat(sc[e0 / 32] as f32));
                    let ml = mul(dmin, splat(mn[e0 / 32] as f32));
                    let q = unsafe { k_nibbles(b.add(16), e0) };
                    sub(mul(dl, to_f(q)), ml)
                }, sink);
            }
        }

        pub(super) struct Q5K;
        impl Block for Q5K {
            const ELEMS: usize = QK_K;
            const BYTES: usize = 176;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 176-byte block.
                let (d, dmin) = unsafe { (f16_splat(b, 0), f16_splat(b, 2)) };
                let (sc, mn) = crate::quant::kquants::q4k_scale_min(unsafe {
                    &*b.add(4).cast::<[u8; 12]>()
                });
                groups!(QK_K, |k, e0| {
                    let dl = mul(d, splat(sc[e0 / 32] as f32));
                    let ml = mul(dmin, splat(mn[e0 / 32] as f32));
                    let low = unsafe { k_nibbles(b.add(48), e0) };
                    let q = or(low, sll(unsafe { plane_bits(b.add(16), e0) }, 4));
                    sub(mul(dl, to_f(q)), ml)
                }, sink);
            }
        }

        pub(super) struct Q6K;
        impl Block for Q6K {
            const ELEMS: usize = QK_K;
            const BYTES: usize = 210;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY (all reads): offsets stay inside the 210-byte block.
                let d = unsafe { f16_splat(b, 208) };
                groups!(QK_K, |k, e0| {
                    let dl = mul(d, splat(unsafe { *b.add(192 + e0 / 16) } as i8 as f32));
                    let (h, r) = (e0 / 128, e0 % 128);
                    let low = unsafe { ld_u8(b.add(64 * h + r % 64)) };
                    let low = and(srl(low, 4 * (r / 64) as u32), splat_i(0x0F));
                    let high = unsafe { ld_u8(b.add(128 + 32 * h + r % 32)) };
                    let high = and(srl(high, 2 * (r / 32) as u32), splat_i(0x03));
                    let q = sub_i(or(low, sll(high, 4)), splat_i(32));
                    mul(dl, to_f(q))
                }, sink);
            }
        }

        /// 32 f32 values per "block"; rows that are not a multiple of 32 finish in scalar code.
        pub(super) struct F32x32;
        impl Block for F32x32 {
            const ELEMS: usize = 32;
            const BYTES: usize = 128;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY: 4·(e0 + LANES) <= 128 bytes.
                groups!(32, |k, e0| unsafe { ldx(b.add(4 * e0).cast::<f32>()) }, sink);
            }
        }

        /// 32 f16 values per "block".
        pub(super) struct F16x32;
        impl Block for F16x32 {
            const ELEMS: usize = 32;
            const BYTES: usize = 64;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY: 2·(e0 + LANES) <= 64 bytes.
                groups!(32, |k, e0| unsafe { ld_f16(b.add(2 * e0)) }, sink);
            }
        }

        /// 32 bf16 values per "block".
        pub(super) struct Bf16x32;
        impl Block for Bf16x32 {
            const ELEMS: usize = 32;
            const BYTES: usize = 64;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn decode<S: FnMut(usize, usize, F)>(b: *const u8, sink: &mut S) {
                // SAFETY: 2·(e0 + LANES) <= 64 bytes.
                groups!(32, |k, e0| unsafe { ld_bf16(b.add(2 * e0)) }, sink);
            }
        }

        /// Writes `n_blocks` decoded blocks of `B` to `dst`.
        ///
        /// # Safety
        /// The CPU has `$features`; `src` has `n_blocks · B::BYTES` bytes and `dst` room for
        /// `n_blocks · B::ELEMS` values.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn dequantize_blocks<B: Block>(
            src: *const u8,
            dst: *mut f32,
            n_blocks: usize,
        ) {
            for blk in 0..n_blocks {
                // SAFETY: block `blk` and its output range are in bounds (caller contract).
                unsafe {
                    let out = dst.add(blk * B::ELEMS);
                    B::decode(src.add(blk * B::BYTES), &mut |_, e0, w| st(out.add(e0), w));
                }
            }
        }

        /// `Σ w · x` over `n_blocks` blocks of `B` at `row` against `x`.
        ///
        /// # Safety
        /// The CPU has `$features`; `row` has `n_blocks · B::BYTES` bytes and `x` has
        /// `n_blocks · B::ELEMS` values.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn dot_blocks<B: Block>(
            row: *const u8,
            x: *const f32,
            n_blocks: usize,
        ) -> f32 {
            // SAFETY: one row at `row` (caller contract).
            unsafe { dot_rows_blocks::<B, 1>(row, 0, x, n_blocks)[0] }
        }

        /// Weight rows one [`dot_rows_blocks`] call serves in [`dot_rows`]. Measured on
        /// SmolLM2 decode (weights streamed from DRAM, AMD EPYC AVX-512): 4 rows per pass was
        /// ~20% slower end to end than 1, although faster on cache-resident benchmarks.
        const ROWS: usize = 1;

        /// `Σ w_r · x` for the `R` rows at `rows + r · row_stride`, `n_blocks` blocks of `B`
        /// each. Each row's sum is computed exactly as [`dot_blocks`] computes it (same
        /// accumulators, same order), so results do not depend on `R`.
        ///
        /// # Safety
        /// The CPU has `$features`; each row has `n_blocks · B::BYTES` bytes and `x` has
        /// `n_blocks · B::ELEMS` values.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn dot_rows_blocks<B: Block, const R: usize>(
            rows: *const u8,
            row_stride: usize,
            x: *const f32,
            n_blocks: usize,
        ) -> [f32; R] {
            let mut acc = [[zero(); GROUPS]; R];
            for blk in 0..n_blocks {
                // SAFETY: block `blk` of each row and its activations are in bounds (caller
                // contract).
                unsafe {
                    let xb = x.add(blk * B::ELEMS);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let b = rows.add(r * row_stride + blk * B::BYTES);
                        B::decode(b, &mut |k, e0, w| {
                            acc[k] = fmadd(w, ldx(xb.add(e0)), acc[k]);
                        });
                    }
                }
            }
            std::array::from_fn(|r| {
                let mut total = acc[r][0];
                for a in &acc[r][1..] {
                    total = add(total, *a);
                }
                hsum(total)
            })
        }

        /// `out[r] = Σ w_r · x` for `out.len()` consecutive rows of `row_stride` bytes at
        /// `rows`, [`ROWS`] rows per pass over `x`.
        ///
        /// # Safety
        /// The CPU has `$features`; `rows` has `out.len() · row_stride` bytes and each row
        /// holds `n_blocks` blocks of `B`; `x` has `n_blocks · B::ELEMS` values.
        #[target_feature(enable = $features)]
        unsafe fn dot_rows_typed<B: Block>(
            rows: *const u8,
            row_stride: usize,
            x: *const f32,
            n_blocks: usize,
            out: &mut [f32],
        ) {
            let mut chunks = out.chunks_exact_mut(ROWS);
            let mut row = rows;
            for chunk in &mut chunks {
                // SAFETY: ROWS rows remain at `row` (caller contract).
                let sums = unsafe { dot_rows_blocks::<B, ROWS>(row, row_stride, x, n_blocks) };
                chunk.copy_from_slice(&sums);
                row = row.wrapping_add(ROWS * row_stride);
            }
            for o in chunks.into_remainder() {
                // SAFETY: one row remains at `row` (caller contract).
                *o = unsafe { dot_rows_blocks::<B, 1>(row, row_stride, x, n_blocks)[0] };
                row = row.wrapping_add(row_stride);
            }
        }

        /// Activation rows one [`dot_many_blocks`] call serves.
        pub(super) const MANY: usize = 4;

        /// `out[j] += Σ w · xs[j]` over `n_blocks` blocks of `B`, each block decoded once.
        ///
        /// # Safety
        /// The CPU has `$features`; `row` has `n_blocks · B::BYTES` bytes and every `xs[j]`
        /// has `n_blocks · B::ELEMS` values.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn dot_many_blocks<B: Block>(
            row: *const u8,
            xs: [*const f32; MANY],
            n_blocks: usize,
        ) -> [f32; MANY] {
            let mut acc = [zero(); MANY];
            for blk in 0..n_blocks {
                // SAFETY: block `blk` and its activations are in bounds (caller contract).
                unsafe {
                    let off = blk * B::ELEMS;
                    B::decode(row.add(blk * B::BYTES), &mut |_, e0, w| {
                        for j in 0..MANY {
                            acc[j] = fmadd(w, ldx(xs[j].add(off + e0)), acc[j]);
                        }
                    });
                }
            }
            std::array::from_fn(|j| hsum(acc[j]))
        }

        /// Calls `$body` with `B` bound to the [`Block`] type of `dtype`.
        macro_rules! with_block {
            ($dtype:expr, $B:ident => $body:expr) => {
                match $dtype {
                    DType::F32 => { type $B = F32x32; $body }
                    DType::F16 => { type $B = F16x32; $body }
                    DType::BF16 => { type $B = Bf16x32; $body }
                    DType::Q4_0 => { type $B = Q4_0; $body }
                    DType::Q4_1 => { type $B = Q4_1; $body }
                    DType::Q5_0 => { type $B = Q5_0; $body }
                    DType::Q5_1 => { type $B = Q5_1; $body }
                    DType::Q8_0 => { type $B = Q8_0; $body }
                    DType::Q2K => { type $B = Q2K; $body }
                    DType::Q3K => { type $B = Q3K; $body }
                    DType::Q4K => { type $B = Q4K; $body }
                    DType::Q5K => { type $B = Q5K; $body }
                    DType::Q6K => { type $B = Q6K; $body }
                }
            };
        }

        /// Values handled by whole SIMD blocks (the rest of a float row is a scalar tail).
        fn split(dtype: DType, elements: usize) -> (usize, usize) {
            let block = with_block!(dtype, B => B::ELEMS);
            let n_blocks = elements / block;
            (n_blocks, n_blocks * block)
        }

        /// Decodes `dst.len()` values of `dtype` from `src`.
        ///
        /// # Safety
        /// The CPU has `$features`; `src` has exactly the bytes of `dst.len()` values.
        pub(super) unsafe fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) {
            let (n_blocks, head) = split(dtype, dst.len());
            // SAFETY: the head covers n_blocks whole blocks of both slices.
            unsafe {
                let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
                with_block!(dtype, B => dequantize_blocks::<B>(src, dst, n_blocks))
            };
            let head_bytes = head / dtype.block_elems() * dtype.block_bytes();
            scalar::dequantize(dtype, &src[head_bytes..], &mut dst[head..]);
        }

        /// `Σ row[i] · x[i]`.
        ///
        /// # Safety
        /// The CPU has `$features`; `row` has exactly the bytes of `x.len()` values.
        pub(super) unsafe fn dot(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
            let (n_blocks, head) = split(dtype, x.len());
            // SAFETY: the head covers n_blocks whole blocks of `row` and `x`.
            let (row_ptr, x_ptr) = (row.as_ptr(), x.as_ptr());
            let sum = unsafe { with_block!(dtype, B => dot_blocks::<B>(row_ptr, x_ptr, n_blocks)) };
            if head == x.len() {
                return sum;
            }
            let head_bytes = head / dtype.block_elems() * dtype.block_bytes();
            sum + scalar::dot(dtype, &row[head_bytes..], &x[head..])
        }

        /// `out[r] = Σ rows[r][i] · x[i]` for `out.len()` consecutive rows of `x.len()` values.
        ///
        /// # Safety
        /// The CPU has `$features`; `rows` has exactly `out.len()` rows of the bytes of
        /// `x.len()` values.
        pub(super) unsafe fn dot_rows(dtype: DType, rows: &[u8], x: &[f32], out: &mut [f32]) {
            let Some(row_bytes) = rows.len().checked_div(out.len()) else {
                return;
            };
            let (n_blocks, head) = split(dtype, x.len());
            let (rows_ptr, x_ptr) = (rows.as_ptr(), x.as_ptr());
            // SAFETY: every row covers n_blocks whole blocks; `x` covers their values.
            unsafe {
                with_block!(dtype, B => dot_rows_typed::<B>(rows_ptr, row_bytes, x_ptr, n_blocks, out))
            };
            if head == x.len() {
                return;
            }
            let head_bytes = head / dtype.block_elems() * dtype.block_bytes();
            for (o, row) in out.iter_mut().zip(rows.chunks_exact(row_bytes)) {
                *o += scalar::dot(dtype, &row[head_bytes..], &x[head..]);
            }
        }

        /// `out[j] = Σ row[i] · xs[j][i]`, each block decoded once per `MANY` rows.
        ///
        /// # Safety
        /// The CPU has `$features`; every `xs[j]` has the value count of `row`, and
        /// `out.len() == xs.len()`.
        pub(super) unsafe fn dot_many(dtype: DType, row: &[u8], xs: &[&[f32]], out: &mut [f32]) {
            let elements = xs.first().map_or(0, |x| x.len());
            let (n_blocks, head) = split(dtype, elements);
            let head_bytes = head / dtype.block_elems() * dtype.block_bytes();
            for (xs, out) in xs.chunks(MANY).zip(out.chunks_mut(MANY)) {
                // Short chunks repeat their last row; its extra results are dropped.
                let ptrs: [*const f32; MANY] =
                    std::array::from_fn(|j| xs[j.min(xs.len() - 1)].as_ptr());
                // SAFETY: every pointer addresses a row of `elements >= head` values.
                let sums = unsafe {
                    with_block!(dtype, B => dot_many_blocks::<B>(row.as_ptr(), ptrs, n_blocks))
                };
                for ((o, s), x) in out.iter_mut().zip(sums).zip(xs.iter()) {
                    *o = s;
                    if head < elements {
                        *o += scalar::dot(dtype, &row[head_bytes..], &x[head..]);
                    }
                }
            }
        }
    };
}
