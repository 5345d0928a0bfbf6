//! [`Weight`]: a read-only parameter kept in its on-disk format.
//!
//! Shape convention: PyTorch order, `[rows, cols]` for matrices (`Linear` weights are
//! `[out_features, in_features]`), `[n]` for vectors. Rows are contiguous and each row of a
//! quantised weight is a whole number of blocks. Invariant: `bytes.len()` equals the size the
//! dtype and shape require (checked in [`Weight::new`]).
//!
//! With the `cuda` feature a weight may also carry a device copy (bf16, made by
//! [`Weight::to_device`]); the host bytes stay (memory-mapped), so host ops keep working.

use crate::{Bytes, DType, Device, Result, TensorError};

#[derive(Clone, Debug)]
pub struct Weight {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Bytes,
    /// bf16 device copy, shared by clones (tied embeddings).
    #[cfg(feature = "cuda")]
    gpu: Option<std::sync::Arc<crate::cuda::GpuWeight>>,
}

impl Weight {
    /// Checks that `bytes` holds exactly `shape` values of `dtype`.
    pub fn new(dtype: DType, shape: Vec<usize>, bytes: Bytes) -> Result<Self> {
        let elements: usize = shape.iter().product();
        let row = shape.last().copied().unwrap_or(1);
        let rows = elements.checked_div(row).unwrap_or(0);
        let expected =
            dtype
                .bytes_for(row)
                .map(|b| b * rows)
                .ok_or_else(|| TensorError::Invalid {
                    op: "Weight::new",
                    detail: format!(
                        "row length {row} is not a multiple of the {} block size",
                        dtype.name()
                    ),
                })?;
        if bytes.len() != expected {
            return Err(TensorError::ByteLength {
                dtype,
                elements,
                expected,
                actual: bytes.len(),
            });
        }
        Ok(Self {
            dtype,
            shape,
            bytes,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Where the weight's compute copy lives (a GPU once uploaded).
    pub fn device(&self) -> Device {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return Device::Cuda(g.backend.ordinal());
        }
        Device::Cpu
    }

    /// This weight with a copy on `device`: on a GPU, dequantised to bf16 and uploaded.
    /// `f32_output`: `linear` with it produces f32 rows (vocabulary projections, i.e. logits);
    /// otherwise bf16. On the CPU this is a cheap clone.
    pub fn to_device(&self, device: Device, f32_output: bool) -> Result<Weight> {
        let _ = f32_output;
        match device {
            Device::Cpu => Ok(self.clone()),
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => {
                let backend = crate::cuda::backend(ordinal)?;
                let data = crate::cuda::upload_bf16(&backend, &self.to_f32_vec()?)?;
                let mut w = self.clone();
                w.gpu = Some(std::sync::Arc::new(crate::cuda::GpuWeight {
                    backend,
                    data,
                    f32_output,
                }));
                Ok(w)
            }
        }
    }

    /// The device copy, if uploaded.
    #[cfg(feature = "cuda")]
    pub fn gpu(&self) -> Option<&crate::cuda::GpuWeight> {
        self.gpu.as_deref()
    }

    /// This weight with `gpu` as its device copy (made on the device, e.g. dummy weights filled
    /// by `cuda::random`); the caller guarantees `gpu` holds this weight's values in bf16.
    #[cfg(feature = "cuda")]
    pub(crate) fn with_gpu(mut self, gpu: crate::cuda::GpuWeight) -> Weight {
        self.gpu = Some(std::sync::Arc::new(gpu));
        self
    }

    /// An f32 weight from values (tests, small derived parameters).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self> {
        let bytes = Bytes::from_vec(bytemuck::cast_slice(values).to_vec());
        Self::new(DType::F32, shape, bytes)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Number of values.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Length of the innermost dimension.
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows (product of all but the innermost dimension).
    pub fn num_rows(&self) -> usize {
        self.elements().checked_div(self.row_len()).unwrap_or(0)
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.bytes.len().checked_div(self.num_rows()).unwrap_or(0)
    }

    /// The raw bytes of row `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.bytes[i * rb..(i + 1) * rb]
    }

    /// Dequantises the whole weight to f32 (row-major).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.elements()];
        crate::quant::dequantize(self.dtype, &self.bytes, &mut out)?;
        Ok(out)
    }

    /// Rows `start..end` as a new weight sharing the same bytes.
    pub fn narrow_rows(&self, start: usize, end: usize) -> Result<Weight> {
        if start > end || end > self.num_rows() || self.shape.len() != 2 {
            return Err(TensorError::Invalid {
                op: "Weight::narrow_rows",
                detail: format!("rows {start}..{end} of shape {:?}", self.shape),
            });
        }
        let rb = self.row_bytes();
        let bytes = self
            .bytes
            .slice(start * rb..end * rb)
            .ok_or_else(|| TensorError::Invalid {
                op: "Weight::narrow_rows",
                detail: "byte range out of bounds".into(),
            })?;
        Self::new(self.dtype, vec![end - start, self.shape[1]], bytes)
    }
}
