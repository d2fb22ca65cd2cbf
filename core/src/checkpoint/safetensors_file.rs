//! Reading checkpoints into a [`WeightMap`]: safetensors files (Hugging Face's format) and
//! `config.json`. Bytes in, tensors out: the callers own the file system (or the fetch).

use safetensors::{Dtype, SafeTensors};

use crate::Error;
use crate::checkpoint::weights::{HostTensor, WeightMap};

/// The element types checkpoints store, as far as this crate reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDtype {
    F32,
    F16,
    BF16,
    I64,
    I32,
    I8,
    U8,
    Bool,
}

/// One tensor from little-endian bytes: floats widen to f32 exactly; integers and booleans
/// (token ids, masks, buffers such as `embeddings.position_ids`) convert when f32 holds them
/// exactly.
pub fn tensor_from_le_bytes(
    name: &str,
    dtype: RawDtype,
    shape: Vec<usize>,
    data: &[u8],
) -> Result<HostTensor, Error> {
    let values: Vec<f32> = match dtype {
        RawDtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        RawDtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        RawDtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        RawDtype::I64 => exact_integers(
            name,
            data.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))),
        )?,
        RawDtype::I32 => exact_integers(
            name,
            data.chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))),
        )?,
        RawDtype::I8 => data.iter().map(|&b| f32::from(b as i8)).collect(),
        RawDtype::U8 | RawDtype::Bool => data.iter().map(|&b| f32::from(b)).collect(),
    };
    HostTensor::new(name, shape, values)
}

/// Every tensor of a safetensors file as `f32`, keyed by its name (F32, F16, BF16, I64, I32,
/// I8, U8 and BOOL tensors; see [`tensor_from_le_bytes`]).
pub fn read_safetensors(bytes: &[u8]) -> Result<WeightMap, Error> {
    let file = SafeTensors::deserialize(bytes)?;
    file.iter()
        .map(|(name, view)| {
            let dtype = match view.dtype() {
                Dtype::F32 => RawDtype::F32,
                Dtype::F16 => RawDtype::F16,
                Dtype::BF16 => RawDtype::BF16,
                Dtype::I64 => RawDtype::I64,
                Dtype::I32 => RawDtype::I32,
                Dtype::I8 => RawDtype::I8,
                Dtype::U8 => RawDtype::U8,
                Dtype::BOOL => RawDtype::Bool,
                other => {
                    return Err(Error::UnsupportedDtype {
                        name: name.into(),
                        dtype: format!("{other:?}"),
                    });
                }
            };
            let tensor = tensor_from_le_bytes(name, dtype, view.shape().to_vec(), view.data())?;
            Ok((name.to_string(), tensor))
        })
        .collect()
}

/// A safetensors file holding every tensor of `weights` as F32.
pub fn write_safetensors(weights: &WeightMap) -> Result<Vec<u8>, Error> {
    write_safetensors_as(weights, false)
}

/// A safetensors file holding every tensor of `weights` as F16 (rounded to nearest): half the
/// bytes, for shipping a trained model.
pub fn write_safetensors_f16(weights: &WeightMap) -> Result<Vec<u8>, Error> {
    write_safetensors_as(weights, true)
}

fn write_safetensors_as(weights: &WeightMap, half_precision: bool) -> Result<Vec<u8>, Error> {
    let tensors = weights
        .iter()
        .map(|(name, t)| {
            let (dtype, data) = if half_precision {
                (Dtype::F16, f16_bytes(&t.data))
            } else {
                (
                    Dtype::F32,
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            };
            (name.clone(), dtype, t.shape.clone(), data)
        })
        .collect();
    serialize(tensors)
}

/// The suffix of the F32 tensor that holds one scale per row of an int8 matrix.
pub const INT8_SCALE_SUFFIX: &str = ".int8_scale";

/// A safetensors file holding `weights` small: every matrix (2-D tensor) as I8 with one scale
/// per row (symmetric, the index's quantisation), the scales as F32 tensors named
/// `NAME.int8_scale`, every other tensor (biases, LayerNorms) as F16. Read it back with
/// [`read_safetensors`] and [`dequantize_int8_matrices`].
pub fn write_safetensors_int8(weights: &WeightMap) -> Result<Vec<u8>, Error> {
    let mut tensors = Vec::new();
    for (name, t) in weights {
        if let [rows, cols] = t.shape[..] {
            let (values, scales) = crate::index::int8::quantize_rows(&t.data, cols)?;
            let values = values.iter().map(|&v| v as u8).collect();
            let scales = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((name.clone(), Dtype::I8, t.shape.clone(), values));
            let scale_name = format!("{name}{INT8_SCALE_SUFFIX}");
            tensors.push((scale_name, Dtype::F32, vec![rows], scales));
        } else {
            tensors.push((
                name.clone(),
                Dtype::F16,
                t.shape.clone(),
                f16_bytes(&t.data),
            ));
        }
    }
    serialize(tensors)
}

/// `weights` with every int8 matrix [`write_safetensors_int8`] wrote multiplied back by its
/// rows' scales, and the scale tensors gone; a map without scales comes back unchanged.
pub fn dequantize_int8_matrices(mut weights: WeightMap) -> Result<WeightMap, Error> {
    let scaled: Vec<String> = weights
        .keys()
        .filter_map(|k| k.strip_suffix(INT8_SCALE_SUFFIX).map(String::from))
        .collect();
    for name in scaled {
        let scales = weights
            .remove(&format!("{name}{INT8_SCALE_SUFFIX}"))
            .expect("listed above");
        let Some(matrix) = weights.get_mut(&name) else {
            return Err(Error::MissingWeight { name });
        };
        let [rows, cols] = matrix.shape[..] else {
            return Err(Error::WeightShape {
                name,
                expected: vec![scales.data.len(), 0],
                found: matrix.shape.clone(),
            });
        };
        if cols == 0 {
            return Err(Error::Model(format!(
                "{name}: an int8 matrix of shape {:?} has no columns to scale",
                matrix.shape
            )));
        }
        if scales.shape != [rows] {
            return Err(Error::WeightShape {
                name: format!("{name}{INT8_SCALE_SUFFIX}"),
                expected: vec![rows],
                found: scales.shape,
            });
        }
        for (row, scale) in matrix.data.chunks_exact_mut(cols).zip(&scales.data) {
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Ok(weights)
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect()
}

fn serialize(tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>) -> Result<Vec<u8>, Error> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(safetensors::serialize(views, None)?)
}

fn exact_integers(name: &str, values: impl Iterator<Item = i64>) -> Result<Vec<f32>, Error> {
    const EXACT: i64 = 1 << 24;
    values
        .map(|v| {
            if (-EXACT..=EXACT).contains(&v) {
                Ok(v as f32)
            } else {
                Err(Error::InexactInteger {
                    name: name.into(),
                    value: v,
                })
            }
        })
        .collect()
}

/// The tensors whose names start with `prefix`, with the prefix removed (e.g. `embedder.`
/// out of a whole `RealmForOpenQA` state dict).
pub fn strip_prefix(weights: &WeightMap, prefix: &str) -> WeightMap {
    weights
        .iter()
        .filter_map(|(name, t)| {
            name.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), t.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dtype: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let header = format!(
            r#"{{"t":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[0,{}]}}}}"#,
            data.len()
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_floats_and_exact_integers() {
        let floats: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let w = read_safetensors(&file("F32", &[2], &floats)).unwrap();
        assert_eq!(w["t"].data, vec![1.5, -2.0]);
        let ints: Vec<u8> = [7i64, 30521].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_safetensors(&file("I64", &[1, 2], &ints)).unwrap()["t"].shape,
            vec![1, 2]
        );
    }

    #[test]
    fn half_precision_widens_exactly_and_writing_round_trips() {
        let halves: Vec<u8> = [0.5f32, -3.25]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let w = read_safetensors(&file("F16", &[2], &halves)).unwrap();
        assert_eq!(w["t"].data, vec![0.5, -3.25]);
        let again = read_safetensors(&write_safetensors(&w).unwrap()).unwrap();
        assert_eq!(again["t"].data, w["t"].data);
        assert_eq!(again["t"].shape, vec![2]);
    }

    #[test]
    fn int8_matrices_come_back_within_half_a_step_of_each_row() {
        let mut rng = crate::rng::SplitMix64::new(3);
        let mut weights = WeightMap::new();
        let matrix = rng.uniform_vec(16 * 64, 2.0);
        weights.insert(
            "w".into(),
            HostTensor::new("w", vec![16, 64], matrix.clone()).unwrap(),
        );
        weights.insert(
            "b".into(),
            HostTensor::new("b", vec![4], vec![0.5, -1.0, 2.0, 3.25]).unwrap(),
        );
        let bytes = write_safetensors_int8(&weights).unwrap();
        let raw = read_safetensors(&bytes).unwrap();
        assert_eq!(raw["w.int8_scale"].shape, vec![16]);
        let back = dequantize_int8_matrices(raw).unwrap();
        assert_eq!(back.len(), 2, "the scales are gone");
        assert_eq!(
            back["b"].data, weights["b"].data,
            "vectors stay F16, exact here"
        );
        for (row, (got, want)) in back["w"].data.chunks(64).zip(matrix.chunks(64)).enumerate() {
            let step = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= step * 0.5 + 1e-6, "row {row}: {g} vs {w}");
            }
        }
        // Smaller than F16 for matrices: one byte a value and four a row.
        assert!(bytes.len() < write_safetensors_f16(&weights).unwrap().len());
        // A file without scales is read as it is; a scale of the wrong length is an error.
        let plain = read_safetensors(&write_safetensors(&weights).unwrap()).unwrap();
        assert_eq!(
            dequantize_int8_matrices(plain.clone()).unwrap()["w"].data,
            matrix
        );
        let mut bad = plain;
        bad.insert(
            "w.int8_scale".into(),
            HostTensor::new("s", vec![2], vec![1.0, 1.0]).unwrap(),
        );
        assert!(matches!(
            dequantize_int8_matrices(bad),
            Err(Error::WeightShape { .. })
        ));
        // A matrix with no columns is refused, not split into rows of nothing.
        let mut empty = WeightMap::new();
        empty.insert(
            "w".into(),
            HostTensor::new("w", vec![3, 0], vec![]).unwrap(),
        );
        empty.insert(
            "w.int8_scale".into(),
            HostTensor::new("s", vec![3], vec![1.0; 3]).unwrap(),
        );
        let e = dequantize_int8_matrices(empty).unwrap_err().to_string();
        assert!(e.contains("no columns"), "{e}");
    }

    #[test]
    fn a_corrupt_or_unsupported_file_is_an_error() {
        let floats: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let good = file("F32", &[2], &floats);
        assert!(matches!(
            read_safetensors(&good[..good.len() - 1]),
            Err(Error::Safetensors(_))
        ));
        assert!(matches!(
            read_safetensors(&good[..5]),
            Err(Error::Safetensors(_))
        ));
        assert!(matches!(
            read_safetensors(&file("F64", &[1], &floats)),
            Err(Error::UnsupportedDtype { .. })
        ));
        let big: Vec<u8> = (1i64 << 40).to_le_bytes().to_vec();
        assert!(matches!(
            read_safetensors(&file("I64", &[1], &big)),
            Err(Error::InexactInteger { .. })
        ));
    }
}
