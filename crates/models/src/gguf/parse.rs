//! The GGUF byte-level parser behind [`super::GgufFile`]: a bounds-checked cursor, metadata
//! values, tensor infos and the placement checks (alignment, bounds, overlaps, unique names).
//!
//! Invariant: every length or count read from the file is checked against the bytes remaining
//! before anything is allocated or sliced.

use std::collections::BTreeMap;
use std::path::Path;

use arle_tensor::DType;

use super::{GgufTensorInfo, GgufValue};
use crate::{ModelError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: usize = 32;
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
/// Deepest array nesting accepted (real files use 1).
const MAX_ARRAY_DEPTH: usize = 8;

/// ggml tensor type id -> storage format, for the formats this runtime supports.
fn dtype_from_ggml(id: u32) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::Q4_0,
        3 => DType::Q4_1,
        6 => DType::Q5_0,
        7 => DType::Q5_1,
        8 => DType::Q8_0,
        10 => DType::Q2K,
        11 => DType::Q3K,
        12 => DType::Q4K,
        13 => DType::Q5K,
        14 => DType::Q6K,
        30 => DType::BF16,
        _ => return None,
    })
}

/// A bounds-checked little-endian cursor over the file bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, detail: impl Into<String>) -> ModelError {
        ModelError::Corrupt {
            path: self.path.to_path_buf(),
            detail: detail.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.corrupt(format!(
                "truncated: {what} needs {n} bytes at offset {}, file has {} left",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u64 count of items that each occupy at least `min_item_bytes` in the rest of the file.
    fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let max = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > max {
            return Err(self.corrupt(format!(
                "{what} is {n}, but only {} bytes remain at offset {} (truncated or corrupt file)",
                self.remaining(),
                self.pos
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(1, &format!("length of {what}"))?;
        let start = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.corrupt(format!("{what} at offset {start} is not valid UTF-8")))
    }

    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<GgufValue> {
        Ok(match type_id {
            0 => GgufValue::U8(u8::from_le_bytes(self.array(key)?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(key)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(key)?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.corrupt(format!("metadata `{key}`: bool byte is {b}"))),
            },
            8 => GgufValue::String(self.string(&format!("metadata `{key}` string"))?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.corrupt(format!("metadata `{key}`: arrays nested too deep")));
                }
                let elem_type = self.u32(key)?;
                let min_elem = min_value_bytes(elem_type).ok_or_else(|| {
                    self.corrupt(format!(
                        "metadata `{key}`: unknown array element type {elem_type}"
                    ))
                })?;
                let n = self.count(min_elem, &format!("metadata `{key}` array length"))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem_type, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(u64::from_le_bytes(self.array(key)?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            t => return Err(self.corrupt(format!("metadata `{key}`: unknown value type {t}"))),
        })
    }
}

/// Smallest encoding of a value of GGUF type `type_id`, or `None` for an unknown type.
fn min_value_bytes(type_id: u32) -> Option<usize> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// Header, metadata and tensor directory of a GGUF image.
pub(super) struct Parsed {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: usize,
    pub data_offset: usize,
}

/// Parses and validates everything but the tensor bytes themselves.
pub(super) fn parse(path: &Path, buf: &[u8]) -> Result<Parsed> {
    let mut cur = Cursor { buf, pos: 0, path };
    let magic = cur.take(4, "magic")?;
    if magic != MAGIC {
        return Err(cur.corrupt(format!("not a GGUF file (magic {magic:02x?})")));
    }
    let version = cur.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(cur.corrupt(format!(
            "unsupported GGUF version {version} (supported: 2, 3; big-endian files are not)"
        )));
    }
    // A tensor info takes >= 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes;
    // a metadata entry >= 8 (key len) + 4 (type) + 1.
    let num_tensors = cur.count(24, "tensor count")?;
    let num_kv = cur.count(13, "metadata count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..num_kv {
        let key = cur.string("metadata key")?;
        let type_id = cur.u32(&key)?;
        let value = cur.value(type_id, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(cur.corrupt(format!("duplicate metadata key `{key}`")));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_i128() {
            Some(a) if a > 0 && (a as u128).is_power_of_two() && a <= 1 << 30 => a as usize,
            _ => return Err(cur.corrupt(format!("general.alignment {v:?} is not a power of 2"))),
        },
    };
    let mut raw = Vec::with_capacity(num_tensors);
    for _ in 0..num_tensors {
        raw.push(read_tensor_info(&mut cur, alignment)?);
    }
    let data_offset = cur.pos.div_ceil(alignment) * alignment;
    let tensors = place_tensors(&cur, raw, data_offset)?;
    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// A tensor info as stored: offset relative to the data section.
struct RawTensorInfo {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
    rel_offset: u64,
    num_bytes: usize,
}

fn read_tensor_info(cur: &mut Cursor<'_>, alignment: usize) -> Result<RawTensorInfo> {
    let name = cur.string("tensor name")?;
    let n_dims = cur.u32(&name)?;
    if n_dims > MAX_DIMS {
        return Err(cur.corrupt(format!(
            "tensor `{name}` has {n_dims} dims (max {MAX_DIMS})"
        )));
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = cur.u64(&name)?;
        let d = usize::try_from(d)
            .map_err(|_| cur.corrupt(format!("tensor `{name}`: dimension {d} too large")))?;
        ne.push(d);
    }
    let type_id = cur.u32(&name)?;
    let dtype = dtype_from_ggml(type_id).ok_or_else(|| {
        cur.corrupt(format!(
            "tensor `{name}` has ggml type id {type_id}, which is not supported \
             (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)"
        ))
    })?;
    let rel_offset = cur.u64(&name)?;
    if !rel_offset.is_multiple_of(alignment as u64) {
        return Err(cur.corrupt(format!(
            "tensor `{name}` offset {rel_offset} is not a multiple of the alignment {alignment}"
        )));
    }
    let row = ne.first().copied().unwrap_or(1);
    let elements = ne.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let row_bytes = dtype.bytes_for(row);
    let num_bytes = match (elements, row_bytes) {
        (Some(e), Some(rb)) => e.checked_div(row).unwrap_or(0).checked_mul(rb),
        (_, None) => {
            return Err(cur.corrupt(format!(
                "tensor `{name}`: row of {row} values is not a whole number of {} blocks",
                dtype.name()
            )))
        }
        (None, _) => None,
    }
    .ok_or_else(|| cur.corrupt(format!("tensor `{name}`: shape {ne:?} overflows")))?;
    let shape = ne.into_iter().rev().collect();
    Ok(RawTensorInfo {
        name,
        shape,
        dtype,
        rel_offset,
        num_bytes,
    })
}

/// Makes offsets absolute and checks: unique names, inside the file, no overlaps.
fn place_tensors(
    cur: &Cursor<'_>,
    raw: Vec<RawTensorInfo>,
    data_offset: usize,
) -> Result<Vec<GgufTensorInfo>> {
    let file_len = cur.buf.len();
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        let offset = usize::try_from(t.rel_offset)
            .ok()
            .and_then(|o| o.checked_add(data_offset));
        let end = offset.and_then(|o| o.checked_add(t.num_bytes));
        let (Some(offset), Some(end)) = (offset, end) else {
            return Err(cur.corrupt(format!("tensor `{}`: offset overflows", t.name)));
        };
        if end > file_len {
            return Err(cur.corrupt(format!(
                "tensor `{}` data {offset}..{end} extends past end of file ({file_len} bytes); \
                 truncated file?",
                t.name
            )));
        }
        tensors.push(GgufTensorInfo {
            name: t.name,
            shape: t.shape,
            dtype: t.dtype,
            offset,
            num_bytes: t.num_bytes,
        });
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].offset, tensors[i].num_bytes));
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        if a.offset + a.num_bytes > b.offset {
            return Err(cur.corrupt(format!(
                "tensors `{}` and `{}` overlap (offsets {} and {})",
                a.name, b.name, a.offset, b.offset
            )));
        }
    }
    let mut names = std::collections::HashSet::with_capacity(tensors.len());
    for t in &tensors {
        if !names.insert(t.name.as_str()) {
            return Err(cur.corrupt(format!("duplicate tensor name `{}`", t.name)));
        }
    }
    Ok(tensors)
}
