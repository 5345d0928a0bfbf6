//! GGUF v2/v3 reader: header, typed metadata, tensor directory; tensor data stays in the mmap.
//!
//! Layout (little-endian): magic `GGUF`, version u32, tensor count u64, metadata count u64,
//! metadata `(key string, type u32, value)*`, tensor infos `(name, n_dims u32, ne u64*n_dims,
//! type u32, offset u64)*`, padding to `general.alignment` (default 32), then the data section.
//!
//! Invariants after [`GgufFile::open`] succeeds: every tensor's bytes lie inside the file, are
//! aligned, do not overlap, and hold exactly `shape` values of `dtype` (each row a whole number of
//! blocks); names are unique UTF-8. Every length read from the file is checked against the bytes
//! that remain before anything is allocated, so a corrupt file yields [`ModelError::Corrupt`]
//! naming the file and the problem, never a panic or a huge allocation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arle_tensor::{Bytes, DType, Weight};

use crate::{ModelError, Result};

mod parse;

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

impl GgufValue {
    /// The value as an integer, for any integer width (bools and floats are not integers).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as f64, for float or integer values.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// GGUF's name of this value's type (for error messages).
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "u8",
            GgufValue::I8(_) => "i8",
            GgufValue::U16(_) => "u16",
            GgufValue::I16(_) => "i16",
            GgufValue::U32(_) => "u32",
            GgufValue::I32(_) => "i32",
            GgufValue::U64(_) => "u64",
            GgufValue::I64(_) => "i64",
            GgufValue::F32(_) => "f32",
            GgufValue::F64(_) => "f64",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
        }
    }
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
    /// `general.alignment`, or 32.
    pub alignment: usize,
    /// Absolute byte offset of the data section.
    pub data_offset: usize,
    pub(crate) data: Bytes,
    by_name: HashMap<String, usize>,
}

impl GgufFile {
    /// Opens and validates a GGUF file (mmap). Errors name the file and what is wrong.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not
        // being truncated or rewritten by another process while it is open.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(path, Bytes::from_mmap(mmap))
    }

    /// Parses a GGUF image already in memory (`path` is only used in errors).
    pub fn parse(path: &Path, data: Bytes) -> Result<Self> {
        let parsed = parse::parse(path, data.as_slice())?;
        let by_name = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            data,
            by_name,
        })
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// The tensor directory entry named `name` (GGUF naming).
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor by GGUF name, sharing the file's bytes.
    pub fn weight(&self, info: &GgufTensorInfo) -> Result<Weight> {
        let bytes = self
            .data
            .slice(info.offset..info.offset + info.num_bytes)
            .ok_or_else(|| self.corrupt(format!("tensor {} out of bounds", info.name)))?;
        Ok(Weight::new(info.dtype, info.shape.clone(), bytes)?)
    }

    pub(crate) fn corrupt(&self, detail: String) -> ModelError {
        ModelError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn wrong_type(&self, key: &str, want: &str, got: &GgufValue) -> ModelError {
        self.corrupt(format!(
            "metadata `{key}` should be {want}, is {}",
            got.type_name()
        ))
    }

    /// An unsigned integer of any width that fits `u64` (`None` if absent).
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_i128().map(u64::try_from) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(self.wrong_type(key, "a non-negative integer", v)),
        }
    }

    /// An integer of any width that fits `u32` (`None` if absent).
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get_u64(key)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| self.corrupt(format!("metadata `{key}` = {n} does not fit u32"))),
        }
    }

    /// An integer of any width that fits `usize` (`None` if absent).
    pub fn get_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get_u64(key)? {
            None => Ok(None),
            Some(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| self.corrupt(format!("metadata `{key}` = {n} does not fit usize"))),
        }
    }

    /// A float (f32/f64, or an integer) as f32 (`None` if absent).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| self.wrong_type(key, "a number", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "a bool", v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let items = match self.get(key) {
            None => return Ok(None),
            Some(GgufValue::Array(items)) => items,
            Some(v) => return Err(self.wrong_type(key, "an array of strings", v)),
        };
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong_type(key, "a string", v))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An array of integers of any width, each fitting `i64` (e.g. `tokenizer.ggml.token_type`).
    pub fn get_int_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let items = match self.get(key) {
            None => return Ok(None),
            Some(GgufValue::Array(items)) => items,
            Some(v) => return Err(self.wrong_type(key, "an array of integers", v)),
        };
        items
            .iter()
            .map(|v| match v.as_i128().map(i64::try_from) {
                Some(Ok(n)) => Ok(n),
                _ => Err(self.wrong_type(key, "an integer", v)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An array of numbers as f32 (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let items = match self.get(key) {
            None => return Ok(None),
            Some(GgufValue::Array(items)) => items,
            Some(v) => return Err(self.wrong_type(key, "an array of numbers", v)),
        };
        items
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| self.wrong_type(key, "a number", v))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// `general.architecture` (required by the format).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")?
            .ok_or_else(|| self.corrupt("missing metadata `general.architecture`".into()))
    }
}
