//! Gated DeltaNet core (Qwen3.5 linear attention, MODEL-SPECS §4.4 steps 3-7), f32 throughout.
//!
//! Inputs per sequence: the post-conv `qkv` rows `[n, 2·Hk·Dk + Hv·Dv]` (q | k | v, each
//! head-major), the log decay `g` and the write strength `β` (`[n, Hv]`, see [`gdn_gates`]), and
//! the sequence's recurrent state `S` `[Hv, Dk, Dv]`, updated in place. Value head `j` reads key
//! head `j / (Hv/Hk)` (repeat_interleave). q and k are L2-normalised as `x·rsqrt(Σx² + 1e-6)`,
//! q is scaled by `Dk^-0.5`.
//!
//! Two evaluation orders of the same recurrence `S ← e^g S; S += k (β(v − Sᵀk))ᵀ; o = Sᵀq`:
//! - [`gated_delta_rule_chunked`]: HF's chunked form, chunks of [`GDN_CHUNK`] tokens counted from
//!   the start of each *segment*. Segments end at the requested capture points, so a run split
//!   at multiples of 64 from a 64-aligned start uses exactly the chunk grid of an uninterrupted
//!   run (captured states are then bit-identical to a resumed run's). Used for every
//!   multi-token call and for a first token.
//! - [`gated_delta_rule_recurrent`]: token by token (single-token decode on an existing state;
//!   HF divides q by `√Dk` here).
//!
//! Value heads are independent and run in parallel (rayon).

use crate::{error::shape_err, Result, Tensor};
use rayon::prelude::*;

/// Chunk length of the chunked form (HF `chunk_size`).
pub const GDN_CHUNK: usize = 64;
/// eps inside `rsqrt(Σx² + eps)` of the q/k L2 norm (hard-coded in HF).
const L2_EPS: f32 = 1e-6;

/// Head counts and dims of one Gated DeltaNet layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GdnShape {
    pub num_k_heads: usize,
    pub num_v_heads: usize,
    pub k_head_dim: usize,
    pub v_head_dim: usize,
}

impl GdnShape {
    pub fn key_dim(&self) -> usize {
        self.num_k_heads * self.k_head_dim
    }

    pub fn value_dim(&self) -> usize {
        self.num_v_heads * self.v_head_dim
    }

    /// Channels of the conv / `in_proj_qkv`: `2·Hk·Dk + Hv·Dv`.
    pub fn conv_dim(&self) -> usize {
        2 * self.key_dim() + self.value_dim()
    }

    /// Floats of one recurrent state: `Hv·Dk·Dv`.
    pub fn state_floats(&self) -> usize {
        self.num_v_heads * self.k_head_dim * self.v_head_dim
    }

    fn valid(&self) -> bool {
        self.num_k_heads > 0
            && self.num_v_heads.is_multiple_of(self.num_k_heads)
            && self.k_head_dim > 0
            && self.v_head_dim > 0
    }
}

/// One sequence's inputs to the core.
#[derive(Clone, Copy, Debug)]
pub struct GdnInput<'a> {
    /// `[n, conv_dim]` post-conv (SiLU'd) q | k | v rows.
    pub qkv: &'a Tensor,
    /// `[n, Hv]` log decay (≤ 0).
    pub g: &'a [f32],
    /// `[n, Hv]` write strength in (0, 1).
    pub beta: &'a [f32],
}

/// `β = sigmoid(b)`, `g = −exp(A_log)·softplus(a + dt_bias)` (softplus threshold 20).
/// a, b: `[n, Hv]`; a_log, dt_bias: `[Hv]` → (g `[n, Hv]`, β `[n, Hv]`).
pub fn gdn_gates(
    a: &Tensor,
    b: &Tensor,
    a_log: &[f32],
    dt_bias: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let hv = a_log.len();
    if a.shape() != b.shape() || a.shape().last() != Some(&hv) || dt_bias.len() != hv {
        let detail = format!(
            "a {:?}, b {:?}, A_log [{hv}], dt_bias [{}]",
            a.shape(),
            b.shape(),
            dt_bias.len()
        );
        return shape_err("gdn_gates", detail);
    }
    let g = a
        .data()
        .chunks_exact(hv.max(1))
        .flat_map(|row| {
            row.iter().enumerate().map(|(h, &x)| {
                let x = x + dt_bias[h];
                let softplus = if x > 20.0 { x } else { x.exp().ln_1p() };
                -a_log[h].exp() * softplus
            })
        })
        .collect();
    let beta = b.data().iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
    Ok((g, beta))
}

/// Checks shapes and returns n.
fn check(input: &GdnInput<'_>, shape: &GdnShape, state: &[f32], op: &'static str) -> Result<usize> {
    let n = input.qkv.shape().first().copied().unwrap_or(0);
    let hv = shape.num_v_heads;
    if !shape.valid()
        || input.qkv.shape() != [n, shape.conv_dim()]
        || input.g.len() != n * hv
        || input.beta.len() != n * hv
        || state.len() != shape.state_floats()
    {
        let detail = format!(
            "qkv {:?}, g {}, beta {}, state {} for {shape:?}",
            input.qkv.shape(),
            input.g.len(),
            input.beta.len(),
            state.len()
        );
        return shape_err(op, detail);
    }
    Ok(n)
}

/// L2-normalised q (times `q_scale`) and k: two `[n, Hk, Dk]` buffers.
fn normalized_qk(qkv: &Tensor, shape: &GdnShape, q_scale: impl Fn(f32) -> f32) -> [Vec<f32>; 2] {
    let (kd, dk) = (shape.key_dim(), shape.k_head_dim);
    let mut q = Vec::with_capacity(qkv.dim(0) * kd);
    let mut k = Vec::with_capacity(qkv.dim(0) * kd);
    for row in qkv.data().chunks_exact(shape.conv_dim()) {
        for (dst, src, is_q) in [
            (&mut q, &row[..kd], true),
            (&mut k, &row[kd..2 * kd], false),
        ] {
            for head in src.chunks_exact(dk) {
                let inv = 1.0 / (head.iter().map(|x| x * x).sum::<f32>() + L2_EPS).sqrt();
                dst.extend(head.iter().map(|&x| {
                    let v = x * inv;
                    if is_q {
                        q_scale(v)
                    } else {
                        v
                    }
                }));
            }
        }
    }
    [q, k]
}

/// Read-only views one value head needs.
struct HeadInputs<'a> {
    q: &'a [f32], // [n, Hk, Dk] normalised, scaled
    k: &'a [f32], // [n, Hk, Dk] normalised
    input: &'a GdnInput<'a>,
    shape: GdnShape,
    head: usize,
}

impl HeadInputs<'_> {
    fn q(&self, t: usize) -> &[f32] {
        self.key_row(self.q, t)
    }

    fn k(&self, t: usize) -> &[f32] {
        self.key_row(self.k, t)
    }

    fn key_row<'b>(&self, buf: &'b [f32], t: usize) -> &'b [f32] {
        let s = &self.shape;
        let kh = self.head / (s.num_v_heads / s.num_k_heads);
        &buf[(t * s.num_k_heads + kh) * s.k_head_dim..][..s.k_head_dim]
    }

    fn v(&self, t: usize) -> &[f32] {
        let s = &self.shape;
        let off = 2 * s.key_dim() + self.head * s.v_head_dim;
        &self.input.qkv.data()[t * s.conv_dim() + off..][..s.v_head_dim]
    }

    fn g(&self, t: usize) -> f32 {
        self.input.g[t * self.shape.num_v_heads + self.head]
    }

    fn beta(&self, t: usize) -> f32 {
        self.input.beta[t * self.shape.num_v_heads + self.head]
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Per-head scratch of one chunk.
struct ChunkScratch {
    gamma: Vec<f32>, // [C] inclusive cumsum of g
    a: Vec<f32>,     // [C, C] strictly-lower β_i (k_i·k_j) Γ_ij
    u: Vec<f32>,     // [C, Dv] L⁻¹(β V), then V' = U − W S
    w: Vec<f32>,     // [C, Dk] L⁻¹(β e^γ K)
}

/// One chunk `t0..t0+len` of one head: writes o rows (`[len, Dv]` at `out`), updates `s`.
fn chunk_step(
    hi: &HeadInputs<'_>,
    t0: usize,
    len: usize,
    s: &mut [f32],
    out: &mut [f32],
    sc: &mut ChunkScratch,
) {
    let (dk, dv) = (hi.shape.k_head_dim, hi.shape.v_head_dim);
    let mut acc = 0.0f32;
    for i in 0..len {
        acc += hi.g(t0 + i);
        sc.gamma[i] = acc;
    }
    // A_ij = β_i (k_i·k_j) exp(γ_i − γ_j), j < i.
    for i in 0..len {
        let (ki, bi) = (hi.k(t0 + i), hi.beta(t0 + i));
        for j in 0..i {
            let kb_dot = dot(ki, hi.k(t0 + j)) * bi;
            sc.a[i * GDN_CHUNK + j] = kb_dot * (sc.gamma[i] - sc.gamma[j]).exp();
        }
    }
    // Forward substitution: U_i = β_i v_i − Σ_j A_ij U_j; W_i = β_i e^γ_i k_i − Σ_j A_ij W_j.
    for i in 0..len {
        let bi = hi.beta(t0 + i);
        let eg = sc.gamma[i].exp();
        let (done_u, rest_u) = sc.u.split_at_mut(i * dv);
        let ui = &mut rest_u[..dv];
        ui.iter_mut()
            .zip(hi.v(t0 + i))
            .for_each(|(u, &v)| *u = v * bi);
        let (done_w, rest_w) = sc.w.split_at_mut(i * dk);
        let wi = &mut rest_w[..dk];
        wi.iter_mut()
            .zip(hi.k(t0 + i))
            .for_each(|(w, &k)| *w = k * bi * eg);
        for j in 0..i {
            let aij = sc.a[i * GDN_CHUNK + j];
            ui.iter_mut()
                .zip(&done_u[j * dv..(j + 1) * dv])
                .for_each(|(u, &x)| *u -= aij * x);
            wi.iter_mut()
                .zip(&done_w[j * dk..(j + 1) * dk])
                .for_each(|(w, &x)| *w -= aij * x);
        }
    }
    // V'_i = U_i − W_i S (S: [Dk, Dv]).
    for i in 0..len {
        let ui = &mut sc.u[i * dv..(i + 1) * dv];
        for (a, &wa) in sc.w[i * dk..(i + 1) * dk].iter().enumerate() {
            ui.iter_mut()
                .zip(&s[a * dv..(a + 1) * dv])
                .for_each(|(u, &x)| *u -= wa * x);
        }
    }
    // O_i = e^γ_i (q_i S) + Σ_{j≤i} (q_i·k_j) Γ_ij V'_j.
    for i in 0..len {
        let qi = hi.q(t0 + i);
        let oi = &mut out[i * dv..(i + 1) * dv];
        oi.fill(0.0);
        let eg = sc.gamma[i].exp();
        for (a, &qa) in qi.iter().enumerate() {
            let c = qa * eg;
            oi.iter_mut()
                .zip(&s[a * dv..(a + 1) * dv])
                .for_each(|(o, &x)| *o += c * x);
        }
        for j in 0..=i {
            let c = dot(qi, hi.k(t0 + j)) * (sc.gamma[i] - sc.gamma[j]).exp();
            oi.iter_mut()
                .zip(&sc.u[j * dv..(j + 1) * dv])
                .for_each(|(o, &x)| *o += c * x);
        }
    }
    // S ← e^γ_last S + Σ_j (e^{γ_last − γ_j} k_j) V'_jᵀ.
    let last = sc.gamma[len - 1];
    let decay = last.exp();
    s.iter_mut().for_each(|x| *x *= decay);
    for j in 0..len {
        let c = (last - sc.gamma[j]).exp();
        let vj = &sc.u[j * dv..(j + 1) * dv];
        for (a, &ka) in hi.k(t0 + j).iter().enumerate() {
            let kc = ka * c;
            s[a * dv..(a + 1) * dv]
                .iter_mut()
                .zip(vj)
                .for_each(|(x, &v)| *x += kc * v);
        }
    }
}

/// Chunked form over the whole sequence. `captures`: strictly increasing token counts in
/// `1..=n` after which the state is copied out (each `[Hv, Dk, Dv]`, in order); chunks restart
/// at each capture point. Returns o `[n, Hv·Dv]` and the captured states.
pub fn gated_delta_rule_chunked(
    input: &GdnInput<'_>,
    shape: &GdnShape,
    state: &mut [f32],
    captures: &[usize],
) -> Result<(Tensor, Vec<Vec<f32>>)> {
    let n = check(input, shape, state, "gated_delta_rule_chunked")?;
    let increasing = captures.windows(2).all(|w| w[0] < w[1]);
    if !increasing || captures.first() == Some(&0) || captures.last().is_some_and(|&c| c > n) {
        return shape_err(
            "gated_delta_rule_chunked",
            format!("captures {captures:?} must increase within 1..={n}"),
        );
    }
    let scale = 1.0 / (shape.k_head_dim as f32).sqrt();
    let [q, k] = normalized_qk(input.qkv, shape, |v| v * scale);
    let mut ends: Vec<usize> = captures.to_vec();
    if ends.last() != Some(&n) {
        ends.push(n);
    }
    let (dk, dv) = (shape.k_head_dim, shape.v_head_dim);
    let per_head: Vec<(Vec<f32>, Vec<Vec<f32>>)> = state
        .par_chunks_mut(dk * dv)
        .enumerate()
        .map(|(head, s)| {
            let hi = HeadInputs {
                q: &q,
                k: &k,
                input,
                shape: *shape,
                head,
            };
            let mut sc = ChunkScratch {
                gamma: vec![0.0; GDN_CHUNK],
                a: vec![0.0; GDN_CHUNK * GDN_CHUNK],
                u: vec![0.0; GDN_CHUNK * dv],
                w: vec![0.0; GDN_CHUNK * dk],
            };
            let mut out = vec![0.0f32; n * dv];
            let mut snaps = Vec::with_capacity(captures.len());
            let mut start = 0;
            for &end in &ends {
                let mut t0 = start;
                while t0 < end {
                    let len = (end - t0).min(GDN_CHUNK);
                    chunk_step(&hi, t0, len, s, &mut out[t0 * dv..(t0 + len) * dv], &mut sc);
                    t0 += len;
                }
                if captures.contains(&end) {
                    snaps.push(s.to_vec());
                }
                start = end;
            }
            (out, snaps)
        })
        .collect();
    assemble(per_head, n, shape, captures.len())
}

/// Token-by-token recurrence (decode). Returns o `[n, Hv·Dv]`.
pub fn gated_delta_rule_recurrent(
    input: &GdnInput<'_>,
    shape: &GdnShape,
    state: &mut [f32],
) -> Result<Tensor> {
    let n = check(input, shape, state, "gated_delta_rule_recurrent")?;
    let root = (shape.k_head_dim as f32).sqrt();
    let [q, k] = normalized_qk(input.qkv, shape, |v| v / root);
    let (dk, dv) = (shape.k_head_dim, shape.v_head_dim);
    let per_head: Vec<(Vec<f32>, Vec<Vec<f32>>)> = state
        .par_chunks_mut(dk * dv)
        .enumerate()
        .map(|(head, s)| {
            let hi = HeadInputs {
                q: &q,
                k: &k,
                input,
                shape: *shape,
                head,
            };
            let mut out = vec![0.0f32; n * dv];
            let mut delta = vec![0.0f32; dv];
            for t in 0..n {
                let decay = hi.g(t).exp();
                s.iter_mut().for_each(|x| *x *= decay);
                // δ = β (v − Sᵀk)
                delta.copy_from_slice(hi.v(t));
                for (a, &ka) in hi.k(t).iter().enumerate() {
                    delta
                        .iter_mut()
                        .zip(&s[a * dv..(a + 1) * dv])
                        .for_each(|(d, &x)| *d -= ka * x);
                }
                let beta = hi.beta(t);
                delta.iter_mut().for_each(|d| *d *= beta);
                // S += k δᵀ; o = Sᵀ q
                let o = &mut out[t * dv..(t + 1) * dv];
                for (a, (&ka, &qa)) in hi.k(t).iter().zip(hi.q(t)).enumerate() {
                    let row = &mut s[a * dv..(a + 1) * dv];
                    row.iter_mut().zip(&delta).for_each(|(x, &d)| *x += ka * d);
                    o.iter_mut()
                        .zip(row.iter())
                        .for_each(|(o, &x)| *o += qa * x);
                }
            }
            (out, Vec::new())
        })
        .collect();
    Ok(assemble(per_head, n, shape, 0)?.0)
}

/// Per-head outputs `[n, Dv]` → `[n, Hv·Dv]`; per-head captures → per-capture `[Hv, Dk, Dv]`.
fn assemble(
    per_head: Vec<(Vec<f32>, Vec<Vec<f32>>)>,
    n: usize,
    shape: &GdnShape,
    num_captures: usize,
) -> Result<(Tensor, Vec<Vec<f32>>)> {
    let (hv, dv) = (shape.num_v_heads, shape.v_head_dim);
    let mut out = vec![0.0f32; n * hv * dv];
    let mut states = vec![Vec::with_capacity(shape.state_floats()); num_captures];
    for (head, (o, snaps)) in per_head.into_iter().enumerate() {
        for t in 0..n {
            out[(t * hv + head) * dv..][..dv].copy_from_slice(&o[t * dv..(t + 1) * dv]);
        }
        for (dst, snap) in states.iter_mut().zip(snaps) {
            dst.extend_from_slice(&snap);
        }
    }
    Ok((Tensor::from_vec(vec![n, hv * dv], out)?, states))
}
