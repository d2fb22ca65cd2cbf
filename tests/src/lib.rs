//! Helpers shared by the integration tests in `tests/tests/`.

pub mod legacy_formats;

use std::path::PathBuf;

use realm_core::checkpoint::weights::WeightMap;

/// True when the tests must fail rather than skip without a GPU adapter
/// (`REALM_REQUIRE_GPU=1`, which `scripts/test.sh` sets).
pub fn gpu_required() -> bool {
    std::env::var("REALM_REQUIRE_GPU").as_deref() == Ok("1")
}

/// `../shared/data/<folder>` beside the checkout (or under `$REALM_SHARED_DATA`), which CI
/// provides. Elsewhere a test that needs it says what is missing and skips; in CI
/// (`CI=true`) a missing folder is a failure.
pub fn shared_data(folder: &str) -> Option<PathBuf> {
    let root = std::env::var_os("REALM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = root.join(folder);
    if path.is_dir() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: this test needs the project's shared data (set REALM_SHARED_DATA to its data/ folder)",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// Reads a safetensors file from a shared-data folder.
pub fn read_tensors(path: &std::path::Path) -> WeightMap {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    realm_core::checkpoint::safetensors_file::read_safetensors(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts `|actual - expected| <= abs + rel * |expected|` everywhere, naming the worst place.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], abs: f32, rel: f32) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} values, expected {}",
        actual.len(),
        expected.len()
    );
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let excess = (a - e).abs() - rel * e.abs();
        if excess > worst {
            (worst, at) = (excess, i);
        }
    }
    assert!(
        worst <= abs,
        "{what}: value {at} is {} but the reference has {} (beyond abs {abs} + rel {rel})",
        actual[at],
        expected[at]
    );
}

/// The burn devices a parity test runs on: the CPU backend always, burn's wgpu backend when
/// wgpu finds an adapter (required when `REALM_REQUIRE_GPU=1`).
pub fn parity_devices() -> Vec<(&'static str, burn::tensor::Device)> {
    let mut devices = vec![("cpu", burn::tensor::Device::flex())];
    match realm_shaders::GpuContext::new_blocking() {
        Ok(_) => devices.push((
            "wgpu",
            burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        )),
        Err(e) if gpu_required() => panic!("REALM_REQUIRE_GPU=1 but {e}"),
        Err(e) => eprintln!("wgpu backend not tested: {e}"),
    }
    devices
}

/// A `[batch, seq]` input from the fixture's `<prefix>.input_ids`, `.attention_mask`,
/// `.token_type_ids` (any leading dims are flattened into the batch).
pub fn bert_input(io: &WeightMap, prefix: &str) -> realm_core::text::BertInput {
    let ids = &io[&format!("{prefix}input_ids")];
    let seq = *ids.shape.last().unwrap();
    let ints = |name: &str| {
        io[&format!("{prefix}{name}")]
            .data
            .iter()
            .map(|&v| v as u32)
            .collect::<Vec<u32>>()
    };
    realm_core::text::BertInput {
        input_ids: ints("input_ids"),
        attention_mask: ints("attention_mask"),
        token_type_ids: ints("token_type_ids"),
        batch: ids.data.len() / seq,
        seq,
    }
}

/// A tensor's values on the host.
pub fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

/// The tiny random REALM of `../shared/data/realm-parity-tiny`: its config, its weights
/// (`RealmForOpenQA.state_dict()`) and transformers' inputs and outputs.
pub struct TinyRealm {
    pub dir: PathBuf,
    pub config: realm_core::model::config::BertConfig,
    pub reader_config: realm_core::model::config::ReaderConfig,
    pub weights: WeightMap,
    pub io: WeightMap,
}

/// Loads the tiny REALM fixture, or says what is missing (see [`shared_data`]).
pub fn tiny_realm() -> Option<TinyRealm> {
    let dir = shared_data("realm-parity-tiny")?;
    let json = std::fs::read(dir.join("config.json")).unwrap();
    Some(TinyRealm {
        config: realm_core::model::config::read_config(&json).unwrap(),
        reader_config: serde_json::from_slice(&json).unwrap(),
        weights: read_tensors(&dir.join("realm_tiny.safetensors")),
        io: read_tensors(&dir.join("realm_tiny_io.safetensors")),
        dir,
    })
}

impl TinyRealm {
    /// The embedder from `embedder.*`, loaded strictly.
    pub fn embedder(
        &self,
        device: &burn::tensor::Device,
    ) -> realm_core::model::embedder::RealmEmbedder {
        use realm_core::model::embedder::{EMBEDDER_UNUSED, RealmEmbedder};
        let weights =
            realm_core::checkpoint::safetensors_file::strip_prefix(&self.weights, "embedder.");
        let mut loader = realm_core::checkpoint::weights::WeightLoader::new(weights, device);
        let embedder = RealmEmbedder::load(&self.config, &mut loader, device).unwrap();
        loader.finish(EMBEDDER_UNUSED).unwrap();
        embedder
    }

    /// The span reader from `reader.*`, loaded strictly.
    pub fn reader(&self, device: &burn::tensor::Device) -> realm_core::model::reader::SpanReader {
        use realm_core::model::reader::{READER_UNUSED, SpanReader};
        let weights =
            realm_core::checkpoint::safetensors_file::strip_prefix(&self.weights, "reader.");
        let mut loader = realm_core::checkpoint::weights::WeightLoader::new(weights, device);
        let reader =
            SpanReader::load(&self.config, &self.reader_config, &mut loader, device).unwrap();
        loader.finish(READER_UNUSED).unwrap();
        reader
    }

    /// An integer tensor of the fixture's inputs and outputs.
    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.io[name].data.iter().map(|&v| v as i64).collect()
    }
}
