//! The error type for everything in `realm-core` that reads outside input.

/// Errors from configs, weights, tokenizer input and retrieval arguments.
///
/// Shape misuse inside tensor maths is a programmer error and panics instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("weight `{name}` is missing from the checkpoint")]
    MissingWeight { name: String },
    #[error("weight `{name}` has shape {found:?}, the model expects {expected:?}")]
    WeightShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("weight `{name}` holds {values} values but its shape {shape:?} needs {needed}")]
    WeightData {
        name: String,
        shape: Vec<usize>,
        values: usize,
        needed: usize,
    },
    #[error("the checkpoint has {} weights the model does not use: {}", .names.len(), .names.join(", "))]
    UnusedWeights { names: Vec<String> },
    // Not the error's `source`: its text is already in this one's (a chain would say it twice).
    #[error("cannot read the safetensors checkpoint: {0}")]
    Safetensors(safetensors::SafeTensorError),
    #[error(
        "tensor `{name}` has dtype {dtype}, which this loader does not read (F32, F16, BF16, I64, I32, I8, U8, BOOL)"
    )]
    UnsupportedDtype { name: String, dtype: String },
    #[error("integer tensor `{name}` holds {value}, which f32 cannot represent exactly")]
    InexactInteger { name: String, value: i64 },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("`{tied}` should be tied to `{original}` but holds different values")]
    NotTied { tied: String, original: String },
    #[error("invalid config: {0}")]
    Config(String),
    /// The parse error is in the message, not a source, so a chain (`{:#}`) says it once.
    #[error("cannot parse config.json: {0}")]
    ConfigJson(serde_json::Error),
    #[error("corpus: {0}")]
    Corpus(String),
    #[error("the corpus is empty: embed at least one passage before searching")]
    EmptyCorpus,
    #[error("embedding length {len} is not a multiple of the dimension {dim}")]
    EmbeddingLength { len: usize, dim: usize },
    /// A query, or a vector added to a live index, of another width than the index's rows.
    #[error("a vector of {query} dimensions does not match the index's {index}")]
    DimensionMismatch { query: usize, index: usize },
    #[error("the search backend failed: {0}")]
    Backend(String),
    #[error("the question is empty")]
    EmptyQuestion,
    #[error("the question is empty: it has no word the tokenizer reads")]
    QuestionWithoutWords,
    #[error("k must be at least 1")]
    ZeroK,
    #[error("k {k} is more passages than one answer reads (at most {max})")]
    TooManyPassages { k: usize, max: usize },
    #[error("{what} hold {found} vectors but the index holds {expected}")]
    RowCount {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("the re-scoring factor must be at least 1")]
    ZeroFactor,
    #[error("{what} contains a non-finite value (NaN or infinity) at position {position}")]
    NonFinite { what: &'static str, position: usize },
    #[error(
        "the int8 scale at position {position} is negative ({scale}): a row's scale is max|x| / 127"
    )]
    NegativeScale { position: usize, scale: f32 },
    #[error("not a REALM index shard: {0}")]
    NotAShard(String),
    #[error("{}", shard_version_message(*found, *supported))]
    ShardVersion { found: u32, supported: u32 },
    #[error("index shard is damaged: {0}")]
    CorruptShard(String),
    #[error("document id {id} is not in the index")]
    UnknownDocument { id: u32 },
    #[error("text of {tokens} tokens is longer than the model's {max} positions")]
    TooLong { tokens: usize, max: usize },
    /// A model file that does not fit what it claims to be (checksums, cards, dimensions).
    #[error("{0}")]
    Model(String),
    /// A question file that does not parse: the file's name and the 1-based line.
    #[error("{file}:{line}: {message}")]
    Data {
        file: String,
        line: usize,
        message: String,
    },
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::ConfigJson(e)
    }
}

impl From<safetensors::SafeTensorError> for Error {
    fn from(e: safetensors::SafeTensorError) -> Self {
        Error::Safetensors(e)
    }
}

/// A shard of a version this build does not read: newer ones come from a newer realm.
fn shard_version_message(found: u32, supported: u32) -> String {
    let oldest = crate::index::shard::OLDEST_VERSION;
    let hint = if found > supported {
        "read it with the newer realm that wrote it, or rebuild it with this one's `realm index`"
    } else {
        "rebuild it with `realm index`"
    };
    format!(
        "index shard version {found} is not supported (this build reads versions {oldest} to \
         {supported}): {hint}"
    )
}
