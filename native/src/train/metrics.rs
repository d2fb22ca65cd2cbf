//! One JSON line per training step and per evaluation in `metrics.jsonl`, appended and
//! flushed line by line, so a crash loses at most the line being written. A resumed run
//! first drops the lines past its checkpoint, so the file reads as one uninterrupted run.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

/// Seconds a step spent in each phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    pub data: f64,
    pub forward: f64,
    pub backward: f64,
    pub optimizer: f64,
}

/// One step's line.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub examples_per_s: f64,
    pub seconds: Phases,
    /// What else the trainer logs per step (pre-training: the index's staleness).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `dir/metrics.jsonl` for appending, keeping only the lines of steps before
    /// `resume_step` (all of them when starting fresh with 0 lines).
    pub fn open(dir: &Path, resume_step: usize) -> anyhow::Result<Self> {
        let path = dir.join("metrics.jsonl");
        if path.exists() {
            let kept: Vec<String> = BufReader::new(File::open(&path)?)
                .lines()
                .map_while(Result::ok)
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| (s as usize) < resume_step)
                })
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            crate::files::shard_file::write_atomic(&path, text.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path, file })
    }

    pub fn write(&mut self, line: &impl Serialize) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The `loss` of every step line in a metrics file, by step.
pub fn read_losses(path: &Path) -> anyhow::Result<Vec<(usize, f64)>> {
    let mut losses = Vec::new();
    for (line, value) in read_lines(path)? {
        let (Some(step), Some(loss)) = (value.get("step"), value.get("loss")) else {
            continue;
        };
        // A loss that was not a number is written as null (the run stops on it).
        if loss.is_null() {
            continue;
        }
        match (step.as_u64(), loss.as_f64()) {
            (Some(step), Some(loss)) => losses.push((step as usize, loss)),
            _ => bail!(
                "{}:{line}: \"step\" and \"loss\" must be numbers, not {step} and {loss}",
                path.display()
            ),
        }
    }
    Ok(losses)
}

/// Every line of a metrics file as a JSON object, with its line number (from 1). A last line
/// cut off without its newline (a run killed mid-write) is left out; any other line that is
/// not a JSON object is an error naming it.
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, serde_json::Value)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // Without a final newline the last piece is a line cut off mid-write.
    let cut_off = (!bytes.ends_with(b"\n")).then(|| bytes.split(|&b| b == b'\n').count());
    let mut lines = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(value) if value.is_object() => lines.push((number, value)),
            Err(_) if cut_off == Some(number) => {}
            Ok(_) => bail!("{}:{number}: not a JSON object", path.display()),
            Err(e) => bail!("{}:{number}: {e}", path.display()),
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::{read_lines, read_losses};

    #[test]
    fn a_bad_metrics_line_is_named_and_a_cut_off_last_one_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2, \"lo").unwrap();
        assert_eq!(read_losses(&path).unwrap(), vec![(1, 2.5)]);
        for (text, names) in [
            ("{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2,\n", ":2: "),
            (
                "{\"step\": 1, \"loss\": 2.5}\n[1, 2]\n",
                ":2: not a JSON object",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = read_lines(&path).unwrap_err().to_string();
            assert!(e.contains(names), "{e}");
        }
        std::fs::write(&path, "{\"step\": 1, \"loss\": \"x\"}\n").unwrap();
        let e = read_losses(&path).unwrap_err().to_string();
        assert!(
            e.contains(":1: \"step\" and \"loss\" must be numbers"),
            "{e}"
        );
    }
}
