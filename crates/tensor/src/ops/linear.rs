//! Matrix products against weights in any [`crate::DType`], and embedding lookup.

use crate::{error::shape_err, quant, Result, Tensor, TensorError, Weight};

/// `y = x · wᵀ (+ bias)`.
/// x: `[n, in]`, w: `[out, in]`, bias: `[out]` (f32/bf16/f16) → y: `[n, out]`.
pub fn linear(x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Result<Tensor> {
    let (n, k) = match x.shape() {
        [n, k] => (*n, *k),
        s => return shape_err("linear", format!("x must be 2-D, got {s:?}")),
    };
    let (m, wk) = match w.shape() {
        [m, wk] => (*m, *wk),
        s => return shape_err("linear", format!("w must be 2-D, got {s:?}")),
    };
    if k != wk {
        return shape_err("linear", format!("x {:?} vs w {:?}", x.shape(), w.shape()));
    }
    let bias = bias.map(|b| b.to_f32_vec()).transpose()?;
    if let Some(b) = &bias {
        if b.len() != m {
            return shape_err(
                "linear",
                format!("bias has {} values, expected {m}", b.len()),
            );
        }
    }
    let mut out = vec![0.0f32; n * m];
    for j in 0..m {
        let row = w.row(j);
        for i in 0..n {
            out[i * m + j] =
                quant::dot(w.dtype(), row, x.row(i))? + bias.as_ref().map_or(0.0, |b| b[j]);
        }
    }
    Tensor::from_vec(vec![n, m], out)
}

/// Gathers rows of `table` (`[vocab, hidden]`) for `ids` → `[ids.len(), hidden]`.
pub fn embedding(table: &Weight, ids: &[u32]) -> Result<Tensor> {
    let [vocab, hidden] = table.shape() else {
        return shape_err(
            "embedding",
            format!("table must be 2-D, got {:?}", table.shape()),
        );
    };
    let (vocab, hidden) = (*vocab, *hidden);
    let mut out = vec![0.0f32; ids.len() * hidden];
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= vocab {
            return Err(TensorError::Invalid {
                op: "embedding",
                detail: format!("token id {id} >= vocab {vocab}"),
            });
        }
        quant::dequantize(
            table.dtype(),
            table.row(id),
            &mut out[i * hidden..(i + 1) * hidden],
        )?;
    }
    Tensor::from_vec(vec![ids.len(), hidden], out)
}
