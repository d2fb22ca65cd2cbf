//! Reading checkpoints into a [`WeightMap`]: safetensors files (Hugging Face's format) and
//! `config.json`. Bytes in, tensors out: the callers own the file system (or the fetch).

use safetensors::{Dtype, SafeTensors};

use crate::Error;
use crate::config::BertConfig;
use crate::weights::{HostTensor, WeightMap};

/// Every tensor of a safetensors file as `f32`, keyed by its name.
///
/// Float tensors must be F32; integer and boolean tensors (token ids, masks, buffers such
/// as `embeddings.position_ids`) are converted when f32 holds them exactly.
pub fn read_safetensors(bytes: &[u8]) -> Result<WeightMap, Error> {
    let file = SafeTensors::deserialize(bytes)?;
    file.iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::I64 => exact_integers(
                    name,
                    data.chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap())),
                )?,
                Dtype::I32 => exact_integers(
                    name,
                    data.chunks_exact(4)
                        .map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap()))),
                )?,
                Dtype::U8 | Dtype::BOOL => data.iter().map(|&b| f32::from(b)).collect(),
                other => {
                    return Err(Error::UnsupportedDtype {
                        name: name.into(),
                        dtype: format!("{other:?}"),
                    });
                }
            };
            Ok((
                name.to_string(),
                HostTensor::new(name, view.shape().to_vec(), values)?,
            ))
        })
        .collect()
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

/// A Hugging Face `config.json` (BERT or REALM) as a [`BertConfig`], validated.
pub fn read_config(json: &[u8]) -> Result<BertConfig, Error> {
    let config: BertConfig = serde_json::from_slice(json)?;
    config.validate()?;
    Ok(config)
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
            read_safetensors(&file("F16", &[2], &floats[..4])),
            Err(Error::UnsupportedDtype { .. })
        ));
        let big: Vec<u8> = (1i64 << 40).to_le_bytes().to_vec();
        assert!(matches!(
            read_safetensors(&file("I64", &[1], &big)),
            Err(Error::InexactInteger { .. })
        ));
    }

    #[test]
    fn reads_a_hugging_face_config_and_ignores_unknown_fields() {
        let json = br#"{"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu_new",
            "max_position_embeddings": 128, "layer_norm_eps": 1e-12, "model_type": "realm",
            "retriever_proj_size": 16, "pad_token_id": 1}"#;
        let config = read_config(json).unwrap();
        assert_eq!(config.hidden_act, crate::config::HiddenAct::GeluNew);
        assert_eq!(config.retriever_proj_size, 16);
        assert!(read_config(br#"{"vocab_size": 1}"#).is_err());
    }
}
