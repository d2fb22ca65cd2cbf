//! A burn module's parameters as a [`WeightMap`] keyed by module path (`bert.layers.0...`),
//! and back: how a trained model leaves training (the tensors it changed, in half precision)
//! and is put back over the base model it was trained from.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use crate::Error;
use crate::checkpoint::weights::{HostTensor, WeightMap};

/// Every float parameter of `module` whose path `keep` accepts, on the host.
pub fn export_params<M: Module>(module: &M, keep: impl Fn(&str) -> bool) -> WeightMap {
    struct Export<'a> {
        path: Vec<String>,
        keep: &'a dyn Fn(&str) -> bool,
        out: WeightMap,
    }
    impl ModuleVisitor for Export<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if (self.keep)(&path) {
                let value = param.val();
                let shape = value.dims().to_vec();
                let data: Vec<f32> = value
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32 data");
                self.out.insert(path, HostTensor { shape, data });
            }
        }
    }
    let mut export = Export {
        path: Vec::new(),
        keep: &keep,
        out: WeightMap::new(),
    };
    module.visit(&mut export);
    export.out
}

/// Ids of the float parameters of `module` whose path `pick` accepts (for optimiser groups
/// and freezing).
pub fn param_ids<M: Module>(module: &M, pick: impl Fn(&str) -> bool) -> Vec<ParamId> {
    struct Ids<'a> {
        path: Vec<String>,
        pick: &'a dyn Fn(&str) -> bool,
        ids: Vec<ParamId>,
    }
    impl ModuleVisitor for Ids<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if (self.pick)(&self.path.join(".")) {
                self.ids.push(param.id);
            }
        }
    }
    let mut ids = Ids {
        path: Vec::new(),
        pick: &pick,
        ids: Vec::new(),
    };
    module.visit(&mut ids);
    ids.ids
}

/// `module` with every parameter named in `weights` replaced (ids kept); an entry that names
/// no parameter, or has another shape, is an error naming it.
pub fn import_params<M: Module>(module: M, weights: &WeightMap) -> Result<M, Error> {
    struct Import<'a> {
        path: Vec<String>,
        weights: &'a WeightMap,
        used: Vec<String>,
        error: Option<Error>,
    }
    impl ModuleMapper for Import<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let path = self.path.join(".");
            let Some(host) = self.weights.get(&path) else {
                return param;
            };
            self.used.push(path.clone());
            let expected = param.lazy_shape().dims::<D>().to_vec();
            if host.shape != expected {
                self.error.get_or_insert(Error::WeightShape {
                    name: path,
                    expected,
                    found: host.shape.clone(),
                });
                return param;
            }
            let data = TensorData::new(host.data.clone(), host.shape.clone());
            param.map(|old| Tensor::from_data(data, &old.device()))
        }
    }
    let mut import = Import {
        path: Vec::new(),
        weights,
        used: Vec::new(),
        error: None,
    };
    let module = module.map(&mut import);
    if let Some(error) = import.error {
        return Err(error);
    }
    let unused: Vec<String> = weights
        .keys()
        .filter(|k| !import.used.contains(k))
        .cloned()
        .collect();
    if !unused.is_empty() {
        return Err(Error::UnusedWeights { names: unused });
    }
    Ok(module)
}
