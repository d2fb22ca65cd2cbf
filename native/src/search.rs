//! The commands' retrieval step: exact top-k on the CPU index, and the same search on the
//! WGSL kernel where the user asks for it or an adapter exists, with the two compared.

use anyhow::bail;
use clap::ValueEnum;
use realm_core::index::exact::{ExactIndex, MipsIndex};
use realm_core::index::reference::Hit;
use realm_shaders::GpuIndex;

/// Where the top-k search runs besides the CPU reference.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Search {
    /// Also on a GPU when wgpu finds an adapter.
    Auto,
    /// On the CPU reference only.
    Cpu,
    /// Also on a GPU; fail without an adapter.
    Gpu,
}

/// The reference's hits and, when the kernel ran, its adapter and hits.
pub struct Searched {
    pub cpu: Vec<Vec<Hit>>,
    pub gpu: Option<(String, Vec<Vec<Hit>>)>,
}

impl Searched {
    /// Whether the kernel returned the reference's ids for query `q` (None: it did not run).
    pub fn gpu_agrees(&self, q: usize) -> Option<bool> {
        let ids = |hits: &[Hit]| hits.iter().map(|h| h.id).collect::<Vec<_>>();
        self.gpu
            .as_ref()
            .map(|(_, gpu)| ids(&gpu[q]) == ids(&self.cpu[q]))
    }

    pub fn adapter(&self) -> Option<String> {
        self.gpu.as_ref().map(|(name, _)| name.clone())
    }
}

/// Searches `[queries, dim]` against `[documents, dim]` as `search` asks: the CPU index
/// always, the GPU index too where asked or available. Both are `MipsIndex`es.
pub fn search(
    search: Search,
    queries: &[f32],
    documents: &[f32],
    dim: usize,
    k: usize,
) -> anyhow::Result<Searched> {
    let mut cpu_index = ExactIndex::new(documents.to_vec(), dim)?;
    cpu_index.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = cpu_index.search(queries, k)?;
    let gpu = match search {
        Search::Cpu => None,
        Search::Auto | Search::Gpu => match GpuIndex::new(documents.to_vec(), dim) {
            Ok(index) => Some((index.describe(), index.search(queries, k)?)),
            Err(e) if search == Search::Gpu => {
                bail!("{e} (run `scripts/setup.sh` for software Vulkan, or pass --search cpu)")
            }
            Err(_) => None,
        },
    };
    Ok(Searched { cpu, gpu })
}

/// Fails when the kernel and the reference disagreed on any query.
pub fn check_agreement(searched: &Searched, queries: usize) -> anyhow::Result<()> {
    if (0..queries).any(|q| searched.gpu_agrees(q) == Some(false)) {
        bail!("the GPU kernel and the CPU reference returned different passages");
    }
    Ok(())
}
