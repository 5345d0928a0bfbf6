//! [`Tensor`]: an f32 activation, row-major, on a [`Device`].
//!
//! Invariant: `data.len() == shape.iter().product()`.

use crate::{error::shape_err, Result};

/// Where a tensor lives. Only the CPU exists until the CUDA backend lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor from values; fails if the shape does not match the length.
    pub fn from_vec(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return shape_err(
                "Tensor::from_vec",
                format!("shape {shape:?} needs {n} values, got {}", data.len()),
            );
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self {
            shape,
            data: vec![0.0; n],
        }
    }

    pub fn device(&self) -> Device {
        Device::Cpu
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Size of dimension `i`.
    pub fn dim(&self, i: usize) -> usize {
        self.shape[i]
    }

    pub fn elements(&self) -> usize {
        self.data.len()
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(mut self, shape: Vec<usize>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return shape_err("Tensor::reshape", format!("{:?} -> {shape:?}", self.shape));
        }
        self.shape = shape;
        Ok(self)
    }

    /// Row `i` of a 2-D tensor.
    pub fn row(&self, i: usize) -> &[f32] {
        let cols = self.shape.last().copied().unwrap_or(1);
        &self.data[i * cols..(i + 1) * cols]
    }

    /// Selected rows of a 2-D tensor, in the given order.
    pub fn gather_rows(&self, rows: &[usize]) -> Result<Tensor> {
        if self.shape.len() != 2 {
            return shape_err(
                "Tensor::gather_rows",
                format!("needs 2-D, got {:?}", self.shape),
            );
        }
        let cols = self.shape[1];
        let mut out = Vec::with_capacity(rows.len() * cols);
        for &r in rows {
            if r >= self.shape[0] {
                return shape_err(
                    "Tensor::gather_rows",
                    format!("row {r} out of {}", self.shape[0]),
                );
            }
            out.extend_from_slice(self.row(r));
        }
        Tensor::from_vec(vec![rows.len(), cols], out)
    }
}
