//! Index shards in the browser: read from the bytes a page fetched (no file system, no
//! memory map), checked like the native reader checks them, and searched on the CPU with
//! the shard's own element type. Hits carry the shard's document ids.

use realm_core::index::exact::MipsIndex;
use realm_core::index::live::LiveIndex;
use realm_core::index::shard::{ElementType, Shard};
use wasm_bindgen::prelude::*;

/// A searchable index shard (f32, f16 or int8).
#[wasm_bindgen]
pub struct ShardIndex {
    index: LiveIndex,
    element: ElementType,
}

#[wasm_bindgen]
impl ShardIndex {
    /// Reads a shard file's bytes; a truncated, damaged, wrong-version or foreign file throws
    /// an Error saying which.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<ShardIndex, JsError> {
        let shard = Shard::from_bytes(bytes)?;
        let element = shard.element_type();
        let (index, ids) = shard.into_index()?;
        Ok(ShardIndex {
            index: LiveIndex::new(index, ids)?,
            element,
        })
    }

    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.index.dim()
    }

    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.index.len()
    }

    /// "f32", "f16" or "int8".
    #[wasm_bindgen(getter, js_name = elementType)]
    pub fn element_type(&self) -> String {
        format!("{:?}", self.element).to_lowercase()
    }

    /// The `k` best documents for one query of `dim` values, best first.
    #[wasm_bindgen(unchecked_return_type = "Hit[]")]
    pub fn search(&self, query: &[f32], k: usize) -> Result<JsValue, JsError> {
        if query.len() != self.index.dim() {
            return Err(JsError::new(&format!(
                "the query has {} values but the shard's vectors have {}",
                query.len(),
                self.index.dim()
            )));
        }
        let hits = self.index.search(query, k)?;
        Ok(serde_wasm_bindgen::to_value(&hits[0])?)
    }

    /// Adds (or replaces) document `id` without rebuilding the shard.
    pub fn add(&mut self, id: u32, vector: &[f32]) -> Result<(), JsError> {
        Ok(self.index.add(id, vector)?)
    }

    /// Removes document `id`.
    pub fn remove(&mut self, id: u32) -> Result<(), JsError> {
        Ok(self.index.remove(id)?)
    }
}

/// Encodes `[ids.length, dim]` vectors as shard bytes, stored as "f32", "f16" or "int8".
#[wasm_bindgen(js_name = buildShard)]
pub fn build_shard(
    vectors: &[f32],
    dim: usize,
    ids: Vec<u32>,
    element: &str,
) -> Result<Vec<u8>, JsError> {
    let element: ElementType = element.parse().map_err(|e: String| JsError::new(&e))?;
    Ok(Shard::from_f32(vectors, dim, ids, element)?.to_bytes())
}
