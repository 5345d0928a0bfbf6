//! HF safetensors checkpoints: a folder with `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Each file is memory-mapped; tensors share the map.
//!
//! Invariants: headers are validated by the `safetensors` crate (offsets contiguous, sizes match
//! dtype and shape, buffer fully covered); only F32/F16/BF16 are accepted; a tensor name appears
//! in exactly one file, and in the file the index says. Every error names the file concerned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ::safetensors::{Dtype, SafeTensors};
use arle_tensor::{Bytes, DType, Weight};

use crate::{ModelError, Result};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One tensor of a checkpoint and the file it came from.
#[derive(Clone, Debug)]
pub struct SafetensorsEntry {
    pub name: String,
    pub weight: Weight,
    pub file: PathBuf,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> ModelError {
    ModelError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads every tensor of the HF folder `dir` (single file preferred over an index).
pub fn read_folder(dir: &Path) -> Result<Vec<SafetensorsEntry>> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return read_file(&single);
    }
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        return read_sharded(&index);
    }
    Err(ModelError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {SINGLE_FILE} or {INDEX_FILE} in this folder"),
        ),
    })
}

/// Reads the shards listed in an index file; checks each tensor lives where the index says.
pub fn read_sharded(index: &Path) -> Result<Vec<SafetensorsEntry>> {
    let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(index, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| corrupt(index, "no `weight_map` object"))?;
    let mut weight_map = BTreeMap::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .filter(|f| !f.contains('/') && !f.contains('\\') && *f != "..")
            .ok_or_else(|| corrupt(index, format!("bad shard file name for `{name}`")))?;
        weight_map.insert(name.as_str(), file);
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    let shards: BTreeSet<&str> = weight_map.values().copied().collect();
    let mut entries = Vec::new();
    for shard in shards {
        entries.extend(read_file(&dir.join(shard))?);
    }
    let mut seen = BTreeSet::new();
    for e in &entries {
        if !seen.insert(e.name.as_str()) {
            return Err(corrupt(
                &e.file,
                format!("tensor `{}` is in two shards", e.name),
            ));
        }
        match weight_map.get(e.name.as_str()) {
            Some(f) if e.file.file_name().is_some_and(|n| n == *f) => {}
            _ => {
                return Err(corrupt(
                    &e.file,
                    format!(
                        "tensor `{}` is not mapped to this file by {INDEX_FILE}",
                        e.name
                    ),
                ))
            }
        }
    }
    if let Some(missing) = weight_map.keys().find(|n| !seen.contains(*n)) {
        let file = dir.join(weight_map[missing]);
        return Err(ModelError::MissingTensor {
            path: file,
            name: (*missing).to_string(),
        });
    }
    Ok(entries)
}

fn dtype_of(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// Reads every tensor of one `.safetensors` file (mmap).
pub fn read_file(path: &Path) -> Result<Vec<SafetensorsEntry>> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only map; we rely on the file not being modified while it is open.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let bytes = Bytes::from_mmap(mmap);
    let (header_len, metadata) = SafeTensors::read_metadata(bytes.as_slice())
        .map_err(|e| corrupt(path, format!("invalid safetensors file: {e}")))?;
    let data_start = 8 + header_len;
    let mut entries = Vec::new();
    let mut infos: Vec<_> = metadata.tensors().into_iter().collect();
    infos.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, info) in infos {
        let dtype = dtype_of(info.dtype).ok_or_else(|| {
            ModelError::Unsupported(format!(
                "{}: tensor `{name}` has dtype {:?} (supported: F32, F16, BF16)",
                path.display(),
                info.dtype
            ))
        })?;
        let (start, end) = info.data_offsets;
        let slice = bytes
            .slice(data_start + start..data_start + end)
            .ok_or_else(|| corrupt(path, format!("tensor `{name}` out of bounds")))?;
        let weight = Weight::new(dtype, info.shape.clone(), slice)
            .map_err(|e| corrupt(path, format!("tensor `{name}`: {e}")))?;
        entries.push(SafetensorsEntry {
            name,
            weight,
            file: path.to_path_buf(),
        });
    }
    Ok(entries)
}
