//! GGUF v2/v3 reader: header, typed metadata, tensor directory; tensor data stays in the mmap.
//! (Skeleton: the loader helper implements parsing; the public API below is the contract.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arle_tensor::{Bytes, DType, Weight};

use crate::Result;

/// A metadata value, with every GGUF value type.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

/// One entry of the tensor directory.
#[derive(Clone, Debug)]
pub struct GgufTensorInfo {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// PyTorch order (outermost first): ggml's `ne` reversed.
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub num_bytes: usize,
}

#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    pub(crate) data: Bytes,
}

impl GgufFile {
    /// Opens and validates a GGUF file (mmap). Errors name the file and what is wrong.
    pub fn open(path: &Path) -> Result<Self> {
        let _ = path;
        Err(crate::ModelError::Unsupported(
            "GGUF reader not implemented yet".into(),
        ))
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A tensor by GGUF name, sharing the file's bytes.
    pub fn weight(&self, info: &GgufTensorInfo) -> Result<Weight> {
        let bytes = self
            .data
            .slice(info.offset..info.offset + info.num_bytes)
            .ok_or_else(|| crate::ModelError::Corrupt {
                path: self.path.clone(),
                detail: format!("tensor {} out of bounds", info.name),
            })?;
        Ok(Weight::new(info.dtype, info.shape.clone(), bytes)?)
    }
}
