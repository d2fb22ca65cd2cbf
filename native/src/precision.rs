//! `--precision`: which matrix products the frozen encoders (question and passage embedding,
//! the reader in `ask` and `eval`) run with on the CPU; training never takes this path.

use anyhow::bail;
use realm_core::linalg::Precision;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrecisionArg {
    /// bf16 where the CPU has AMX (Intel Xeon 4th generation on) or AVX-512 BF16 (AMD Zen 4 on),
    /// f32 elsewhere.
    Auto,
    /// f32 throughout: the reference results.
    #[default]
    F32,
    /// bf16 operands with f32 sums, on AMX tiles or else AVX-512 BF16 (AMD Zen 4 on); an error
    /// where the CPU has neither.
    Bf16,
}

impl PrecisionArg {
    pub fn resolve(self) -> anyhow::Result<Precision> {
        Ok(match self {
            Self::Auto => Precision::fastest(),
            Self::F32 => Precision::F32,
            Self::Bf16 if Precision::Bf16.available() => Precision::Bf16,
            Self::Bf16 => bail!(
                "--precision bf16 needs AMX bf16 (an Intel Xeon of the 4th generation or later, on Linux) or AVX-512 BF16 (AMD Zen 4 or later); this CPU has neither: use --precision f32 or auto"
            ),
        })
    }
}
