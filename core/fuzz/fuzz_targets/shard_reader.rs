//! Any bytes given to the shard reader end in a shard or an error, never a panic; a shard it
//! accepts writes back to the same bytes (a version-1 one as the current version) and can be
//! searched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realm_core::index::shard::Shard;

fuzz_target!(|data: &[u8]| {
    let Ok(shard) = Shard::from_bytes(data) else {
        return;
    };
    let again = shard.to_bytes();
    if data[8..12] == 1u32.to_le_bytes() {
        // Version 1 is written back as the current version: only that word and the header's
        // checksum differ.
        assert_eq!(again[..8], data[..8]);
        assert_eq!(again[12..44], data[12..44]);
        assert_eq!(again[48..], data[48..]);
    } else {
        assert_eq!(again, data, "an accepted shard re-encodes to its own bytes");
    }
    if shard.is_empty() {
        return;
    }
    let dim = shard.dim;
    let (index, ids) = shard.into_index().expect("an accepted shard makes an index");
    let hits = index.search(&vec![0.5; dim], 3).expect("search");
    assert!(hits[0].iter().all(|h| (h.id as usize) < ids.len()));
});
