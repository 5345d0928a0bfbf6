//! Parity of the chunked Gated DeltaNet prefill (`cu/gdn_chunked.cu`) against an f32 CPU port of
//! the chunked form (MODEL-SPECS §4.4 step 7, as arle-tensor's `gated_delta_rule_chunked`, with
//! the kernels' gate math: β rounded to bf16), and against the recurrent `gdn_prefill` kernel.
//! Cases: varlen sequences on distinct slots with a nonzero initial state, lengths around the
//! chunk size, tiny and real head shapes, mixed decode rows (`single_recurrent`).

use std::time::Instant;

use arle_kernels::cudarc::driver::CudaSlice;
use arle_kernels::ops::gdn_chunked::{gdn_chunked_prefill, gdn_chunked_supported};
use arle_kernels::ops::linear_attn::{self, GdnInputs, GdnShape};

use super::gpu_common::{round_bf, Ctx};

const C: usize = 64;

/// Host data of one test problem (values already bf16-rounded where the kernel reads bf16).
struct Problem {
    shape: GdnShape,
    lens: Vec<usize>,
    slots: Vec<i32>,
    qkv: Vec<f32>,    // [n, conv_dim]
    a: Vec<f32>,      // [n, Hv]
    b: Vec<f32>,      // [n, Hv]
    a_log: Vec<f32>,  // [Hv]
    dt: Vec<f32>,     // [Hv]
    state0: Vec<f32>, // [n_slots, Hv, Dk, Dv]
    qkvb: Vec<half::bf16>,
    ab: Vec<half::bf16>,
    bb: Vec<half::bf16>,
}

impl Problem {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ctx: &mut Ctx,
        hk: usize,
        hv: usize,
        dk: usize,
        dv: usize,
        lens: &[usize],
        slots: &[i32],
        a_log_range: (f32, f32),
    ) -> Self {
        let n_slots = *slots.iter().max().expect("slots") as usize + 2;
        let shape = GdnShape {
            n_k_heads: hk,
            n_v_heads: hv,
            k_head_dim: dk,
            v_head_dim: dv,
            n_slots,
        };
        let n: usize = lens.iter().sum();
        let (qkv, qkvb) = ctx.bf16_data(n * shape.conv_dim(), 1.0);
        let (a, ab) = ctx.bf16_data(n * hv, 2.0);
        let (b, bb) = ctx.bf16_data(n * hv, 3.0);
        let (lo, hi) = a_log_range;
        let a_log = ctx
            .uniform(hv, 1.0)
            .into_iter()
            .map(|u| lo + (u + 1.0) * 0.5 * (hi - lo))
            .collect();
        let dt = ctx.uniform(hv, 0.5);
        let state0 = ctx.uniform(shape.state_numel(), 0.5);
        Self {
            shape,
            lens: lens.to_vec(),
            slots: slots.to_vec(),
            qkv,
            a,
            b,
            a_log,
            dt,
            state0,
            qkvb,
            ab,
            bb,
        }
    }

    fn n(&self) -> usize {
        self.lens.iter().sum()
    }

    fn cu(&self) -> Vec<i32> {
        let mut cu = vec![0i32];
        for &l in &self.lens {
            cu.push(cu.last().copied().unwrap_or(0) + l as i32);
        }
        cu
    }

    /// g and β of row t, head h (the kernels' gate math).
    fn gates(&self, t: usize, h: usize) -> (f32, f32) {
        let hv = self.shape.n_v_heads;
        let beta = round_bf(1.0 / (1.0 + (-self.b[t * hv + h]).exp()));
        let x = self.a[t * hv + h] + self.dt[h];
        let sp = if x > 20.0 { x } else { x.exp().ln_1p() };
        (-self.a_log[h].exp() * sp, beta)
    }

    /// Normalised q̂ (times `q_scale`) and k̂ of row t for value head h, and v.
    fn qkv_rows(&self, t: usize, h: usize, q_div: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let s = &self.shape;
        let (hk, dk, dv) = (s.n_k_heads, s.k_head_dim, s.v_head_dim);
        let kh = h / (s.n_v_heads / hk);
        let row = &self.qkv[t * s.conv_dim()..(t + 1) * s.conv_dim()];
        let q = &row[kh * dk..(kh + 1) * dk];
        let k = &row[hk * dk + kh * dk..hk * dk + (kh + 1) * dk];
        let v = row[2 * hk * dk + h * dv..2 * hk * dk + (h + 1) * dv].to_vec();
        let inv = |x: &[f32]| 1.0 / (x.iter().map(|y| y * y).sum::<f32>() + 1e-6).sqrt();
        let (iq, ik) = (inv(q), inv(k));
        let scale = (1.0 / (dk as f64).sqrt()) as f32;
        let root = (dk as f32).sqrt();
        let qn = q
            .iter()
            .map(|&x| if q_div { x * iq / root } else { x * iq * scale })
            .collect();
        (qn, k.iter().map(|&x| x * ik).collect(), v)
    }

    /// f32 reference: each sequence in chunks of C from its first row (or one recurrence step
    /// for a one-row sequence when `single_recurrent`). Returns (out [n, Hv, Dv], final state).
    fn reference(&self, single_recurrent: bool) -> (Vec<f32>, Vec<f32>) {
        let s = &self.shape;
        let (hv, dk, dv) = (s.n_v_heads, s.k_head_dim, s.v_head_dim);
        let mut out = vec![0.0f32; self.n() * hv * dv];
        let mut state = self.state0.clone();
        let cu = self.cu();
        for (seq, &slot) in self.slots.iter().enumerate() {
            let (t_begin, t_end) = (cu[seq] as usize, cu[seq + 1] as usize);
            for h in 0..hv {
                let base = (slot as usize * hv + h) * dk * dv;
                let st = &mut state[base..base + dk * dv];
                if single_recurrent && t_end - t_begin == 1 {
                    self.recurrent_step(t_begin, h, st, &mut out);
                    continue;
                }
                let mut t0 = t_begin;
                while t0 < t_end {
                    let len = (t_end - t0).min(C);
                    self.chunk(t0, len, h, st, &mut out);
                    t0 += len;
                }
            }
        }
        (out, state)
    }

    fn recurrent_step(&self, t: usize, h: usize, st: &mut [f32], out: &mut [f32]) {
        let (hv, dk, dv) = (
            self.shape.n_v_heads,
            self.shape.k_head_dim,
            self.shape.v_head_dim,
        );
        let (q, k, v) = self.qkv_rows(t, h, true);
        let (g, beta) = self.gates(t, h);
        let decay = g.exp();
        st.iter_mut().for_each(|x| *x *= decay);
        for j in 0..dv {
            let m: f32 = (0..dk).map(|i| st[i * dv + j] * k[i]).sum();
            let delta = beta * (v[j] - m);
            let mut o = 0.0;
            for i in 0..dk {
                st[i * dv + j] += k[i] * delta;
                o += st[i * dv + j] * q[i];
            }
            out[(t * hv + h) * dv + j] = o;
        }
    }

    /// One chunk (rows t0..t0+len) of head h, as arle-tensor's `chunk_step`.
    fn chunk(&self, t0: usize, len: usize, h: usize, st: &mut [f32], out: &mut [f32]) {
        let (hv, dk, dv) = (
            self.shape.n_v_heads,
            self.shape.k_head_dim,
            self.shape.v_head_dim,
        );
        let rows: Vec<_> = (0..len).map(|i| self.qkv_rows(t0 + i, h, false)).collect();
        let gb: Vec<_> = (0..len).map(|i| self.gates(t0 + i, h)).collect();
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let mut gam = vec![0.0f32; len];
        let mut acc = 0.0;
        for i in 0..len {
            acc += gb[i].0;
            gam[i] = acc;
        }
        let mut a = vec![0.0f32; len * len];
        for i in 0..len {
            for j in 0..i {
                a[i * len + j] = dot(&rows[i].1, &rows[j].1) * gb[i].1 * (gam[i] - gam[j]).exp();
            }
        }
        let mut u = vec![0.0f32; len * dv];
        let mut w = vec![0.0f32; len * dk];
        for i in 0..len {
            let (bi, eg) = (gb[i].1, gam[i].exp());
            for c in 0..dv {
                let mut x = rows[i].2[c] * bi;
                for j in 0..i {
                    x -= a[i * len + j] * u[j * dv + c];
                }
                u[i * dv + c] = x;
            }
            for c in 0..dk {
                let mut x = rows[i].1[c] * bi * eg;
                for j in 0..i {
                    x -= a[i * len + j] * w[j * dk + c];
                }
                w[i * dk + c] = x;
            }
        }
        for i in 0..len {
            for c in 0..dv {
                let mut x = u[i * dv + c];
                for r in 0..dk {
                    x -= w[i * dk + r] * st[r * dv + c];
                }
                u[i * dv + c] = x;
            }
        }
        for i in 0..len {
            let eg = gam[i].exp();
            let p: Vec<f32> = (0..=i)
                .map(|j| dot(&rows[i].0, &rows[j].1) * (gam[i] - gam[j]).exp())
                .collect();
            for c in 0..dv {
                let inter: f32 = (0..dk).map(|r| rows[i].0[r] * eg * st[r * dv + c]).sum();
                let intra: f32 = (0..=i).map(|j| p[j] * u[j * dv + c]).sum();
                out[((t0 + i) * hv + h) * dv + c] = inter + intra;
            }
        }
        let last = gam[len - 1];
        let decay = last.exp();
        st.iter_mut().for_each(|x| *x *= decay);
        for j in 0..len {
            let cj = (last - gam[j]).exp();
            for r in 0..dk {
                let kc = rows[j].1[r] * cj;
                for c in 0..dv {
                    st[r * dv + c] += kc * u[j * dv + c];
                }
            }
        }
    }
}

/// Runs one kernel (chunked or recurrent) on the problem; returns (out, final state) of the first
/// launch, and the mean time in ms of `reps` further launches (0 when `reps` is 0).
fn run(
    ctx: &Ctx,
    p: &Problem,
    chunked: bool,
    single_recurrent: bool,
    reps: usize,
) -> (Vec<f32>, Vec<f32>, f64) {
    let n = p.n();
    let s = p.shape;
    let (dqkv, da, db) = (ctx.up(&p.qkvb), ctx.up(&p.ab), ctx.up(&p.bb));
    let (dal, ddt, ds, dcu) = (
        ctx.up(&p.a_log),
        ctx.up(&p.dt),
        ctx.up(&p.slots),
        ctx.up(&p.cu()),
    );
    let mut state = ctx.up(&p.state0);
    let mut out = ctx.poisoned_bf16(n * s.n_v_heads * s.v_head_dim);
    let (vq, va, vb, val, vdt, vs) = (
        dqkv.as_view(),
        da.as_view(),
        db.as_view(),
        dal.as_view(),
        ddt.as_view(),
        ds.as_view(),
    );
    let inputs = GdnInputs {
        qkv: &vq,
        a: &va,
        b: &vb,
        a_log: &val,
        dt_bias: &vdt,
        state_slots: &vs,
    };
    let launch = |state: &mut CudaSlice<f32>, out: &mut CudaSlice<half::bf16>| {
        let (mut sv, mut ov) = (state.as_view_mut(), out.as_view_mut());
        if chunked {
            gdn_chunked_prefill(
                &ctx.rt,
                &inputs,
                &dcu.as_view(),
                &mut sv,
                &mut ov,
                n,
                s,
                single_recurrent,
            )
            .expect("gdn chunked prefill");
        } else {
            linear_attn::gdn_prefill(&ctx.rt, &inputs, &dcu.as_view(), &mut sv, &mut ov, n, s)
                .expect("gdn prefill");
        }
    };
    launch(&mut state, &mut out);
    let (got, got_state) = (ctx.down_bf16(&out), ctx.down(&state));
    let mut ms = 0.0;
    if reps > 0 {
        let t = Instant::now();
        for _ in 0..reps {
            launch(&mut state, &mut out);
        }
        ctx.stream().synchronize().expect("sync");
        ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
    }
    (got, got_state, ms)
}

fn case(ctx: &mut Ctx, name: &str, p: &Problem, single_recurrent: bool) {
    let (want, want_state) = p.reference(single_recurrent);
    let (got, got_state, _) = run(ctx, p, true, single_recurrent, 0);
    ctx.check("gdn_chunked out", name, &got, &want, 1e-5);
    ctx.check("gdn_chunked state", name, &got_state, &want_state, 1e-5);
    let (rec, rec_state, _) = run(ctx, p, false, false, 0);
    ctx.check("gdn_chunked vs recurrent", name, &got, &rec, 1e-4);
    ctx.check(
        "gdn_chunked vs rec. state",
        name,
        &got_state,
        &rec_state,
        1e-4,
    );
}

/// One parity case: name, (Hk, Hv, Dk, Dv), sequence lengths, state slots, gate range, and
/// whether single-token sequences take the recurrent form.
type CaseSpec = (
    &'static str,
    (usize, usize, usize, usize),
    &'static [usize],
    &'static [i32],
    (f32, f32),
    bool,
);

const CASES: &[CaseSpec] = &[
    (
        "Hk2 Hv4 Dk16 Dv24 lens 1..700, g harsh",
        (2, 4, 16, 24),
        &[1, 63, 64, 65, 150, 700],
        &[3, 0, 5, 1, 2, 4],
        (-1.0, 1.0),
        false,
    ),
    (
        "Hk2 Hv4 Dk16 Dv24 lens 1..700, g mild",
        (2, 4, 16, 24),
        &[1, 63, 64, 65, 150, 700],
        &[3, 0, 5, 1, 2, 4],
        (-5.0, -1.0),
        false,
    ),
    (
        "tiny, decode rows recurrent [1,70,1,1]",
        (2, 4, 16, 24),
        &[1, 70, 1, 1],
        &[0, 1, 2, 3],
        (-5.0, -1.0),
        true,
    ),
    (
        "Hk16 Hv16 D128 lens [65,1,150]",
        (16, 16, 128, 128),
        &[65, 1, 150],
        &[1, 0, 2],
        (-5.0, -1.0),
        false,
    ),
    (
        "Hk16 Hv32 D128 lens [700,63,64]",
        (16, 32, 128, 128),
        &[700, 63, 64],
        &[2, 0, 1],
        (-5.0, -1.0),
        false,
    ),
    (
        "Hv32 D128 decode rows recurrent",
        (16, 32, 128, 128),
        &[1, 130, 1],
        &[0, 1, 2],
        (-5.0, -1.0),
        true,
    ),
];

pub fn gdn_chunked(ctx: &mut Ctx) {
    for &(name, (hk, hv, dk, dv), lens, slots, gates, single_recurrent) in CASES {
        let p = Problem::new(ctx, hk, hv, dk, dv, lens, slots, gates);
        assert!(gdn_chunked_supported(&ctx.rt, &p.shape), "{name}");
        case(ctx, name, &p, single_recurrent);
    }
    timing(ctx);
}

/// Prints the time of one 4096-token prefill (Hk 16, Hv 32, D 128), chunked vs recurrent.
fn timing(ctx: &mut Ctx) {
    let p = Problem::new(ctx, 16, 32, 128, 128, &[4096], &[0], (-5.0, -1.0));
    for (name, chunked) in [("chunked", true), ("recurrent", false)] {
        let (_, _, ms) = run(ctx, &p, chunked, false, 3);
        println!("BENCH gdn prefill 4096 tokens Hk16 Hv32 D128 {name}: {ms:.3} ms/launch");
    }
}
