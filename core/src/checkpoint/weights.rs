//! Named host-side weights and the strict loader that moves them into burn modules.
//!
//! Every checkpoint family is first read into a [`WeightMap`] keyed by the checkpoint's own
//! names; modules then [`WeightLoader::take`] each tensor they need. Whatever is left when a
//! model is built is an error unless the family names it in an allow-list with a reason.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use crate::Error;

/// One tensor on the host: row-major `f32` values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor whose value count matches its shape.
    pub fn new(name: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<Self, Error> {
        let needed = shape.iter().product();
        if data.len() != needed {
            return Err(Error::WeightData {
                name: name.into(),
                shape,
                values: data.len(),
                needed,
            });
        }
        Ok(Self { shape, data })
    }
}

/// Checkpoint tensors by name.
pub type WeightMap = BTreeMap<String, HostTensor>;

/// Hands out a [`WeightMap`]'s tensors once each and reports the ones nobody took.
pub struct WeightLoader<'d> {
    weights: WeightMap,
    device: &'d Device,
}

impl<'d> WeightLoader<'d> {
    pub fn new(weights: WeightMap, device: &'d Device) -> Self {
        Self { weights, device }
    }

    /// Removes `name` and checks its shape.
    fn take_host(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor, Error> {
        let host = self
            .weights
            .remove(name)
            .ok_or_else(|| Error::MissingWeight { name: name.into() })?;
        if host.shape != shape {
            return Err(Error::WeightShape {
                name: name.into(),
                expected: shape.to_vec(),
                found: host.shape,
            });
        }
        Ok(host)
    }

    /// Removes `name`, checks its shape and uploads it to the device.
    pub fn take<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, Error> {
        let host = self.take_host(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(host.data, shape),
            self.device,
        ))
    }

    /// Takes a PyTorch `nn.Linear` weight (`[out, in]`) and returns it as burn's `[in, out]`.
    pub fn take_linear_weight(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Param<Tensor<2>>, Error> {
        // Transposed on the host, so the device holds a contiguous `[in, out]` matrix: a
        // transposed view would be copied again by every matrix product that reads it.
        let host = self.take_host(name, &[d_out, d_in])?;
        let mut data = vec![0.0f32; d_in * d_out];
        for (o, row) in host.data.chunks_exact(d_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                data[i * d_out + o] = v;
            }
        }
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(data, [d_in, d_out]),
            self.device,
        )))
    }

    /// Takes a tensor as a trainable parameter.
    pub fn take_param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>, Error> {
        Ok(Param::from_tensor(self.take(name, shape)?))
    }

    /// Consumes `tied`, which a checkpoint stores as a copy of `source` (PyTorch saves a tied
    /// weight under both names); it must hold the same values. `source` stays to be taken.
    pub fn check_tied(&mut self, tied: &str, source: &str) -> Result<(), Error> {
        let copy = self
            .weights
            .remove(tied)
            .ok_or_else(|| Error::MissingWeight { name: tied.into() })?;
        let original = self
            .weights
            .get(source)
            .ok_or_else(|| Error::MissingWeight {
                name: source.into(),
            })?;
        if copy != *original {
            return Err(Error::NotTied {
                tied: tied.into(),
                original: source.into(),
            });
        }
        Ok(())
    }

    /// Drops tensors a family deliberately does not load (each allow-list entry is a prefix
    /// or a full name), then fails if anything else is left.
    pub fn finish(mut self, allowed_unused: &[&str]) -> Result<(), Error> {
        self.weights.retain(|name, _| {
            !allowed_unused
                .iter()
                .any(|allowed| name.starts_with(allowed))
        });
        if self.weights.is_empty() {
            Ok(())
        } else {
            Err(Error::UnusedWeights {
                names: self.weights.into_keys().collect(),
            })
        }
    }
}
