//! The index shard file: the document embeddings Embed_doc(z) of a corpus (or one slice of
//! it), their document ids, and how they are stored (f32, f16, or int8 with a scale per
//! vector), behind a header and a checksum. The CLI writes shards, memory-maps them and
//! searches them; the browser reads the same bytes.
//!
//! Layout (little-endian; every section starts on a 64-byte boundary, so a memory-mapped
//! shard can be read in place):
//!
//! | offset | size | field                                                |
//! |--------|------|------------------------------------------------------|
//! | 0      | 8    | magic `REALMIDX`                                     |
//! | 8      | 4    | format version (2; 1 is read too)                    |
//! | 12     | 4    | element type: 1 f32, 2 f16, 3 int8                   |
//! | 16     | 4    | dimension                                            |
//! | 20     | 4    | corpus fingerprint, 0 if not recorded (version 1: 0) |
//! | 24     | 8    | vector count                                         |
//! | 32     | 8    | body length in bytes (everything after the header)   |
//! | 40     | 4    | CRC-32 of the body                                   |
//! | 44     | 4    | CRC-32 of bytes 0..44                                |
//! | 48     | 16   | zero                                                 |
//! | 64     |      | body: ids (u32 x count), scales (f32 x count, int8 only), vectors |
//!
//! The corpus fingerprint ([`crate::text::corpus::fingerprint`]) is that of the passages the
//! ids are positions in, so that an index is never searched beside passages it was not built
//! from (another corpus of the same length would pass every other check).

use half::f16;

use crate::Error;
use crate::index::exact::{ExactIndex, MipsIndex};
use crate::index::int8::{Int8Index, check_int8_rows, quantize_rows};
use crate::index::reference::check_matrix;

pub const MAGIC: [u8; 8] = *b"REALMIDX";
pub const VERSION: u32 = 2;
/// The oldest version read: 1, whose bytes 20..24 are zero (no corpus fingerprint).
pub const OLDEST_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
const ALIGN: usize = 64;
/// No dimension above this is a plausible embedding (and a corrupt header stops here).
pub const MAX_DIM: usize = 1 << 16;

/// How the vectors of a shard are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    F32,
    F16,
    Int8,
}

impl ElementType {
    fn code(self) -> u32 {
        match self {
            ElementType::F32 => 1,
            ElementType::F16 => 2,
            ElementType::Int8 => 3,
        }
    }

    fn from_code(code: u32) -> Result<Self, Error> {
        Ok(match code {
            1 => ElementType::F32,
            2 => ElementType::F16,
            3 => ElementType::Int8,
            other => {
                return Err(Error::CorruptShard(format!(
                    "unknown element type {other} (1 f32, 2 f16, 3 int8)"
                )));
            }
        })
    }

    /// Bytes per stored vector element.
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::F16 => 2,
            ElementType::Int8 => 1,
        }
    }
}

impl std::str::FromStr for ElementType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(ElementType::F32),
            "f16" => Ok(ElementType::F16),
            "int8" => Ok(ElementType::Int8),
            other => Err(format!("unknown element type `{other}` (f32, f16, int8)")),
        }
    }
}

/// The stored vectors of a shard.
#[derive(Debug, Clone, PartialEq)]
pub enum Vectors {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

/// A shard in memory: `ids.len()` vectors of width `dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub dim: usize,
    pub ids: Vec<u32>,
    pub vectors: Vectors,
    /// The fingerprint of the corpus the ids index ([`crate::text::corpus::fingerprint`]),
    /// where it was known when the shard was written.
    pub corpus: Option<u32>,
}

/// What every constructor checks: finite `[ids.len(), dim]` values that fit `element`.
fn check_embeddings(
    embeddings: &[f32],
    dim: usize,
    ids: &[u32],
    element: ElementType,
) -> Result<(), Error> {
    let rows = check_matrix(embeddings, dim, "the embeddings")?;
    if rows != ids.len() {
        return Err(Error::Corpus(format!(
            "{rows} embeddings but {} document ids",
            ids.len()
        )));
    }
    if dim > MAX_DIM {
        return Err(Error::Config(format!("dimension {dim} exceeds {MAX_DIM}")));
    }
    if element == ElementType::F16
        && let Some(position) = embeddings.iter().position(|v| v.abs() > f16::MAX.to_f32())
    {
        return Err(Error::Config(format!(
            "value {} at position {position} does not fit in f16; store f32 or int8",
            embeddings[position]
        )));
    }
    Ok(())
}

impl Shard {
    /// Stores `[ids.len(), dim]` finite f32 embeddings as `element`.
    pub fn from_f32(
        embeddings: &[f32],
        dim: usize,
        ids: Vec<u32>,
        element: ElementType,
    ) -> Result<Self, Error> {
        check_embeddings(embeddings, dim, &ids, element)?;
        let vectors = match element {
            ElementType::F32 => Vectors::F32(embeddings.to_vec()),
            ElementType::F16 => {
                Vectors::F16(embeddings.iter().map(|&v| f16::from_f32(v)).collect())
            }
            ElementType::Int8 => {
                let (values, scales) = quantize_rows(embeddings, dim)?;
                Vectors::Int8 { values, scales }
            }
        };
        Ok(Self {
            dim,
            ids,
            vectors,
            corpus: None,
        })
    }

    /// [`Shard::from_f32`] taking the embeddings by value: an f32 shard keeps the buffer
    /// instead of copying it (a published REALM `block_emb` is 6.8 GB).
    pub fn from_f32_vec(
        embeddings: Vec<f32>,
        dim: usize,
        ids: Vec<u32>,
        element: ElementType,
    ) -> Result<Self, Error> {
        if element != ElementType::F32 {
            return Self::from_f32(&embeddings, dim, ids, element);
        }
        check_embeddings(&embeddings, dim, &ids, element)?;
        Ok(Self {
            dim,
            ids,
            vectors: Vectors::F32(embeddings),
            corpus: None,
        })
    }

    /// The shard recording the fingerprint of the corpus its ids index.
    pub fn with_corpus(self, fingerprint: u32) -> Self {
        Self {
            corpus: Some(fingerprint).filter(|&f| f != 0),
            ..self
        }
    }

    pub fn element_type(&self) -> ElementType {
        match self.vectors {
            Vectors::F32(_) => ElementType::F32,
            Vectors::F16(_) => ElementType::F16,
            Vectors::Int8 { .. } => ElementType::Int8,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The shard's vectors as a searchable index (f16 widens to f32; int8 stays int8).
    /// Hits carry rows; `ids[row]` is the document.
    pub fn into_index(self) -> Result<(Box<dyn MipsIndex + Send + Sync>, Vec<u32>), Error> {
        let index: Box<dyn MipsIndex + Send + Sync> = match self.vectors {
            Vectors::F32(v) => Box::new(ExactIndex::new(v, self.dim)?),
            Vectors::F16(v) => Box::new(ExactIndex::new(
                v.iter().map(|h| h.to_f32()).collect(),
                self.dim,
            )?),
            Vectors::Int8 { values, scales } => Box::new(Int8Index::new(values, scales, self.dim)?),
        };
        Ok((index, self.ids))
    }

    /// The whole file: header and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.body_len());
        self.write_to(&mut bytes)
            .expect("writing into a Vec cannot fail");
        bytes
    }

    /// Writes the file to `out` without building it in memory: the body's checksum is taken
    /// in a first pass over the sections, then header and sections are written.
    pub fn write_to(&self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        let mut crc = crc32fast::Hasher::new();
        self.for_each_body_chunk(|chunk| {
            crc.update(chunk);
            Ok(())
        })?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&self.element_type().code().to_le_bytes());
        header.extend_from_slice(&(self.dim as u32).to_le_bytes());
        header.extend_from_slice(&self.corpus.unwrap_or(0).to_le_bytes());
        header.extend_from_slice(&(self.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.body_len() as u64).to_le_bytes());
        header.extend_from_slice(&crc.finalize().to_le_bytes());
        let header_crc = crc32fast::hash(&header);
        header.extend_from_slice(&header_crc.to_le_bytes());
        header.resize(HEADER_LEN, 0);
        out.write_all(&header)?;
        self.for_each_body_chunk(|chunk| out.write_all(chunk))
    }

    /// Bytes after the header: every section padded to the alignment.
    fn body_len(&self) -> usize {
        let count = self.len();
        let values = count * self.dim;
        padded(count * 4)
            + match &self.vectors {
                Vectors::F32(_) => padded(values * 4),
                Vectors::F16(_) => padded(values * 2),
                Vectors::Int8 { .. } => padded(count * 4) + padded(values),
            }
    }

    /// The body in order (ids, [scales], vectors, each padded), as little-endian chunks.
    fn for_each_body_chunk(
        &self,
        mut emit: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        emit(&le_words(&self.ids))?;
        emit(padding(self.ids.len() * 4))?;
        match &self.vectors {
            Vectors::F32(v) => {
                emit(&le_words(v))?;
                emit(padding(v.len() * 4))
            }
            Vectors::F16(v) => {
                // Encoded a block at a time: no second copy of the vectors in memory.
                for block in v.chunks(1 << 15) {
                    let bytes: Vec<u8> = block.iter().flat_map(|h| h.to_le_bytes()).collect();
                    emit(&bytes)?;
                }
                emit(padding(v.len() * 2))
            }
            Vectors::Int8 { values, scales } => {
                emit(&le_words(scales))?;
                emit(padding(scales.len() * 4))?;
                emit(bytemuck::cast_slice(values))?;
                emit(padding(values.len()))
            }
        }
    }

    /// Reads a shard, checking every field, length and checksum before trusting any of it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let header = ShardHeader::parse(bytes)?;
        let body = &bytes[HEADER_LEN..];
        if (body.len() as u64) != header.body_len {
            return Err(Error::CorruptShard(format!(
                "the header promises {} body bytes but the file has {} (truncated or appended to)",
                header.body_len,
                body.len()
            )));
        }
        if crc32fast::hash(body) != header.body_crc {
            return Err(Error::CorruptShard(
                "the body's checksum does not match: the file was damaged".into(),
            ));
        }
        let (dim, count) = (header.dim, header.count);
        let mut cursor = Cursor { body, at: 0 };
        let ids: Vec<u32> = cursor
            .take(count, 4, "ids")?
            .chunks_exact(4)
            .map(le_u32)
            .collect();
        let vectors = match header.element {
            ElementType::F32 => {
                let raw = cursor.take(count * dim, 4, "f32 vectors")?;
                let v: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_bits(le_u32(c)))
                    .collect();
                check_matrix(&v, dim, "the shard's vectors")?;
                Vectors::F32(v)
            }
            ElementType::F16 => {
                let raw = cursor.take(count * dim, 2, "f16 vectors")?;
                let v: Vec<f16> = raw
                    .chunks_exact(2)
                    .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                if let Some(position) = v.iter().position(|h| !h.is_finite()) {
                    return Err(Error::NonFinite {
                        what: "the shard's vectors",
                        position,
                    });
                }
                Vectors::F16(v)
            }
            ElementType::Int8 => {
                let raw = cursor.take(count, 4, "int8 scales")?;
                let scales: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_bits(le_u32(c)))
                    .collect();
                let values: Vec<i8> = cursor
                    .take(count * dim, 1, "int8 vectors")?
                    .iter()
                    .map(|&b| b as i8)
                    .collect();
                check_int8_rows(values.len(), &scales, dim)?;
                Vectors::Int8 { values, scales }
            }
        };
        if cursor.at != body.len() {
            return Err(Error::CorruptShard(format!(
                "{} bytes after the last section",
                body.len() - cursor.at
            )));
        }
        Ok(Self {
            dim,
            ids,
            vectors,
            corpus: header.corpus,
        })
    }
}

/// The fixed-size header, parsed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    pub element: ElementType,
    pub dim: usize,
    pub count: usize,
    pub body_len: u64,
    pub body_crc: u32,
    /// The corpus fingerprint (version 2), if one was recorded.
    pub corpus: Option<u32>,
}

impl ShardHeader {
    /// Reads the first [`HEADER_LEN`] bytes of a shard file.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(Error::NotAShard(
                "it does not start with `REALMIDX`; build one with `realm index`".into(),
            ));
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::CorruptShard(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let version = le_u32(&bytes[8..12]);
        if crc32fast::hash(&bytes[..44]) != le_u32(&bytes[44..48]) {
            return Err(Error::CorruptShard(
                "the header's checksum does not match".into(),
            ));
        }
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Error::ShardVersion {
                found: version,
                supported: VERSION,
            });
        }
        let corpus = le_u32(&bytes[20..24]);
        if (version == 1 && corpus != 0) || bytes[48..HEADER_LEN].iter().any(|&b| b != 0) {
            return Err(Error::CorruptShard(
                "reserved header bytes are not zero".into(),
            ));
        }
        let element = ElementType::from_code(le_u32(&bytes[12..16]))?;
        let dim = le_u32(&bytes[16..20]) as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::CorruptShard(format!(
                "dimension {dim} is outside 1..={MAX_DIM}"
            )));
        }
        let count = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
        let body_len = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"));
        // Every vector takes at least dim bytes, so the body length bounds the count.
        if count.saturating_mul(dim as u64) > body_len {
            return Err(Error::CorruptShard(format!(
                "{count} vectors of dimension {dim} cannot fit in {body_len} bytes"
            )));
        }
        Ok(Self {
            element,
            dim,
            count: count as usize,
            body_len,
            body_crc: le_u32(&bytes[40..44]),
            corpus: Some(corpus).filter(|&f| f != 0),
        })
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// `len` rounded up to the section alignment.
fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

/// The zeros that pad a `len`-byte section to the alignment.
fn padding(len: usize) -> &'static [u8] {
    &[0u8; ALIGN][..padded(len) - len]
}

/// Four-byte values (u32, f32) as little-endian bytes: the memory itself on little-endian
/// hosts (every target this project builds for), a byte-swapped copy elsewhere.
fn le_words<T: bytemuck::Pod>(values: &[T]) -> std::borrow::Cow<'_, [u8]> {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        std::borrow::Cow::Owned(
            bytes
                .chunks_exact(4)
                .flat_map(|w| w.iter().rev())
                .copied()
                .collect(),
        )
    }
}

/// Walks the body's aligned sections with bounds checks.
struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, items: usize, size: usize, what: &str) -> Result<&'a [u8], Error> {
        // Checked sums too: on wasm32 a crafted count can wrap `at + len` past 2^32.
        let stop = items
            .checked_mul(size)
            .and_then(|len| self.at.checked_add(len))
            .filter(|&stop| stop <= self.body.len())
            .ok_or_else(|| {
                Error::CorruptShard(format!("the {what} section runs past the end of the file"))
            })?;
        let section = &self.body[self.at..stop];
        let end = stop.next_multiple_of(ALIGN);
        if end > self.body.len() || self.body[stop..end].iter().any(|&b| b != 0) {
            return Err(Error::CorruptShard(format!(
                "the padding after the {what} section is missing or not zero"
            )));
        }
        self.at = end;
        Ok(section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// A section whose end does not fit in a `usize` (a crafted count on wasm32, where 2^32
    /// bytes are in reach of a count times an element size) is an error, not a wrapped index.
    #[test]
    fn a_section_length_past_the_address_space_is_an_error() {
        let body = [0u8; 64];
        for (items, size) in [(usize::MAX - 8, 1), (usize::MAX / 4, 4), (usize::MAX, 2)] {
            let mut cursor = Cursor {
                body: &body,
                at: 16,
            };
            let e = cursor.take(items, size, "vectors").unwrap_err().to_string();
            assert!(e.contains("runs past the end"), "{items} x {size}: {e}");
        }
        let mut cursor = Cursor {
            body: &body,
            at: 16,
        };
        assert_eq!(cursor.take(4, 4, "ids").unwrap().len(), 16);
        assert_eq!(cursor.at, ALIGN, "the next section starts aligned");
    }

    /// The file built plainly in memory, as the first writer did: the streaming writer must
    /// produce exactly these bytes.
    fn reference_bytes(shard: &Shard) -> Vec<u8> {
        fn pad(body: &mut Vec<u8>) {
            body.resize(body.len().div_ceil(ALIGN) * ALIGN, 0);
        }
        let mut body = Vec::new();
        body.extend(shard.ids.iter().flat_map(|v| v.to_le_bytes()));
        pad(&mut body);
        match &shard.vectors {
            Vectors::F32(v) => body.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            Vectors::F16(v) => body.extend(v.iter().flat_map(|h| h.to_bits().to_le_bytes())),
            Vectors::Int8 { values, scales } => {
                body.extend(scales.iter().flat_map(|x| x.to_le_bytes()));
                pad(&mut body);
                body.extend(values.iter().map(|&v| v as u8));
            }
        }
        pad(&mut body);
        let mut file = Vec::new();
        file.extend_from_slice(&MAGIC);
        let corpus = shard.corpus.unwrap_or(0);
        for word in [
            VERSION,
            shard.element_type().code(),
            shard.dim as u32,
            corpus,
        ] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(&(shard.len() as u64).to_le_bytes());
        file.extend_from_slice(&(body.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let header_crc = crc32fast::hash(&file);
        file.extend_from_slice(&header_crc.to_le_bytes());
        file.resize(HEADER_LEN, 0);
        file.extend_from_slice(&body);
        file
    }

    #[test]
    fn the_streaming_writer_writes_the_reference_bytes() {
        let mut rng = SplitMix64::new(crate::rng::fresh_seed());
        for (rows, dim) in [(0, 3), (1, 1), (37, 5), (70_000, 2)] {
            let v = rng.uniform_vec(rows * dim, 2.0);
            for element in [ElementType::F32, ElementType::F16, ElementType::Int8] {
                let shard = Shard::from_f32(&v, dim, (0..rows as u32).collect(), element).unwrap();
                assert_eq!(
                    shard.to_bytes(),
                    reference_bytes(&shard),
                    "{rows}x{dim} {element:?}"
                );
            }
            let owned =
                Shard::from_f32_vec(v.clone(), dim, (0..rows as u32).collect(), ElementType::F32);
            assert_eq!(
                owned.unwrap(),
                Shard::from_f32(&v, dim, (0..rows as u32).collect(), ElementType::F32).unwrap()
            );
        }
    }

    fn shard(element: ElementType) -> Shard {
        let mut rng = SplitMix64::new(11);
        let v = rng.uniform_vec(37 * 5, 1.0);
        Shard::from_f32(&v, 5, (100..137).collect(), element).unwrap()
    }

    #[test]
    fn every_element_type_round_trips() {
        for element in [ElementType::F32, ElementType::F16, ElementType::Int8] {
            let s = shard(element);
            let bytes = s.to_bytes();
            assert_eq!(bytes.len() % ALIGN, 0);
            assert_eq!(Shard::from_bytes(&bytes).unwrap(), s, "{element:?}");
        }
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let bytes = shard(ElementType::Int8).to_bytes();
        let err = |b: &[u8]| Shard::from_bytes(b).unwrap_err().to_string();
        assert!(err(b"hello").contains("REALMIDX"));
        assert!(err(&bytes[..40]).contains("header"));
        assert!(err(&bytes[..bytes.len() - 64]).contains("truncated"));
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 3] ^= 1;
        assert!(err(&flipped).contains("checksum"));
        let mut header = bytes.clone();
        header[16] = 9; // dimension, without fixing the header checksum
        assert!(err(&header).contains("header's checksum"));
        let with_version = |v: u8| {
            let mut b = bytes.clone();
            b[8] = v;
            let crc = crc32fast::hash(&b[..44]);
            b[44..48].copy_from_slice(&crc.to_le_bytes());
            b
        };
        for v in [0, 3] {
            let refused = Shard::from_bytes(&with_version(v));
            assert!(matches!(
                &refused,
                Err(Error::ShardVersion { found, .. }) if *found == v as u32
            ));
            let said = refused.unwrap_err().to_string();
            assert!(said.contains("reads versions 1 to 2"), "{said}");
            assert_eq!(said.contains("newer realm"), v == 3, "{said}");
        }
    }

    /// With the header's checksum made right again after `edit`.
    fn edited(shard: &Shard, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut b = shard.to_bytes();
        edit(&mut b);
        let crc = crc32fast::hash(&b[..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn the_corpus_fingerprint_round_trips_and_version_1_has_none() {
        let recorded = shard(ElementType::F32).with_corpus(0xDEAD_BEEF);
        let back = Shard::from_bytes(&recorded.to_bytes()).unwrap();
        assert_eq!(back.corpus, Some(0xDEAD_BEEF));
        assert_eq!(back, recorded);
        assert_eq!(shard(ElementType::F32).with_corpus(0).corpus, None);
        // A version-1 file (as written before fingerprints) reads, with none...
        let old = edited(&shard(ElementType::Int8), |b| b[8] = 1);
        assert_eq!(Shard::from_bytes(&old).unwrap(), shard(ElementType::Int8));
        // ...and one claiming a fingerprint is damaged: version 1 had zero there.
        let bad = edited(&recorded, |b| b[8] = 1);
        let err = Shard::from_bytes(&bad).unwrap_err().to_string();
        assert!(err.contains("reserved header bytes"), "{err}");
    }

    #[test]
    fn every_truncation_and_single_byte_change_is_caught() {
        let bytes = shard(ElementType::F16).to_bytes();
        for len in 0..bytes.len() {
            assert!(
                Shard::from_bytes(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        for at in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[at] = b[at].wrapping_add(1);
            assert!(Shard::from_bytes(&b).is_err(), "byte {at} changed");
        }
    }

    #[test]
    fn mismatched_or_non_finite_input_is_refused() {
        assert!(Shard::from_f32(&[1.0, 2.0], 2, vec![1, 2], ElementType::F32).is_err());
        assert!(Shard::from_f32(&[f32::NAN, 2.0], 2, vec![1], ElementType::F16).is_err());
    }
}

#[cfg(test)]
mod seed_files {
    use super::*;

    /// The fuzzer's seeds were written by a separate Python encoder of the layout in this
    /// file's header (`core/fuzz/make_seeds.py`): the reader must accept all of them.
    #[test]
    fn the_independently_written_seed_shards_read_as_documented() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        for (name, element) in [
            ("f32", ElementType::F32),
            ("f16", ElementType::F16),
            ("int8", ElementType::Int8),
        ] {
            let shard = Shard::from_bytes(&std::fs::read(dir.join(name)).unwrap()).unwrap();
            assert_eq!((shard.dim, shard.ids.clone()), (2, vec![7, 8, 9]), "{name}");
            assert_eq!(shard.element_type(), element);
            let (index, _) = shard.into_index().unwrap();
            let hits = index.search(&[1.0, 0.0], 1).unwrap();
            assert_eq!(hits[0][0].id, 0, "{name}: row 0 is the vector (1, 0)");
            assert_eq!(shard_corpus(&dir.join(name)), None, "{name}: version 1");
        }
    }

    fn shard_corpus(path: &std::path::Path) -> Option<u32> {
        Shard::from_bytes(&std::fs::read(path).unwrap())
            .unwrap()
            .corpus
    }

    /// `f32-v2` records the fingerprint Python computed of the passages below (the same as
    /// `PASSAGES` in make_seeds.py): ours must be the same number.
    #[test]
    fn the_seed_fingerprint_is_the_documented_one() {
        use crate::text::corpus::{Passage, fingerprint};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let passages: Vec<Passage> = [
            ("Alpha", "The first letter."),
            ("", "A passage without a title."),
            ("\u{3a9}mega", "Last, \u{fc}n\u{ef}code."),
        ]
        .iter()
        .map(|&(title, text)| Passage {
            title: title.into(),
            text: text.into(),
        })
        .collect();
        let recorded = shard_corpus(&dir.join("f32-v2"));
        assert_eq!(recorded, Some(fingerprint(&passages)));
        let mut other = passages.clone();
        other.swap(0, 1);
        assert_ne!(recorded, Some(fingerprint(&other)), "order matters");
        let mut moved = passages;
        moved[0].title.push('.');
        moved[0].text.remove(0);
        assert_ne!(
            recorded,
            Some(fingerprint(&moved)),
            "a byte moved between fields"
        );
    }
}
