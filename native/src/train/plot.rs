//! Training curves from `metrics.jsonl`: the loss of every step and its running mean over 25
//! steps, written beside the metrics as `loss.svg` and `loss.png`, and the held-out
//! evaluations (ICT's accuracy, pre-training's retrieval utility) as `eval.svg`/`eval.png`. Text is drawn with DejaVu
//! Sans from the system's fonts (`scripts/setup.sh` installs it); without it only the SVG,
//! whose text the viewer renders, is written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

use crate::train::metrics::{read_lines, read_losses};

/// Where DejaVu Sans lives on Debian and most Linux systems.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a sans-serif font once; false when none is found.
fn register_font() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        FONT_PATHS.iter().any(|path| {
            std::fs::read(path).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Where a chart is drawn before it is renamed over `dir/<stem>.<ext>`: a reader (a viewer, a
/// browser reloading the run's page) never sees half a file. The extension stays last, which
/// the PNG encoder reads.
fn drawing_path(dir: &Path, stem: &str, ext: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!(".{stem}.partial.{ext}")),
        dir.join(format!("{stem}.{ext}")),
    )
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

/// Draws one chart into `dir/<stem>.svg` (text drawn when a font is found) and, with a font,
/// `dir/<stem>.png`, each through a temporary file renamed over it; evaluates to the files
/// written. `$draw` is called as `$draw(area, text)` once per backend.
macro_rules! svg_and_png {
    ($dir:expr, $stem:expr, |$area:ident, $text:ident| $draw:expr) => {{
        let has_font = register_font();
        let mut written = Vec::new();
        let (partial, svg) = drawing_path($dir, $stem, "svg");
        {
            let $area = SVGBackend::new(&partial, (900, 500)).into_drawing_area();
            let $text = has_font;
            $draw.with_context(|| format!("drawing {}", svg.display()))?;
        }
        rename(&partial, &svg)?;
        written.push(svg);
        if has_font {
            let (partial, png) = drawing_path($dir, $stem, "png");
            {
                let $area = BitMapBackend::new(&partial, (900, 500)).into_drawing_area();
                let $text = true;
                $draw.with_context(|| format!("drawing {}", png.display()))?;
            }
            rename(&partial, &png)?;
            written.push(png);
        }
        written
    }};
}

/// Writes `dir/loss.svg` (and `dir/loss.png` when a font is found); returns the files.
pub fn plot_losses(dir: &Path, title: &str) -> anyhow::Result<Vec<PathBuf>> {
    let losses = read_losses(&dir.join("metrics.jsonl"))?;
    if losses.is_empty() {
        return Ok(Vec::new());
    }
    let written = svg_and_png!(dir, "loss", |area, text| draw(area, &losses, title, text));
    Ok(written)
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    losses: &[(usize, f64)],
    title: &str,
    text: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let last = losses.last().map_or(1, |l| l.0 + 1);
    let top = losses.iter().map(|l| l.1).fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let mut builder = ChartBuilder::on(&area);
    builder.margin(15);
    if text {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(55);
    }
    let mut chart = builder
        .build_cartesian_2d(0..last, 0.0..top)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if text {
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let light = RGBColor(150, 180, 230);
    chart
        .draw_series(LineSeries::new(losses.iter().map(|&(s, l)| (s, l)), &light))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let window = 25;
    let mean: Vec<(usize, f64)> = (0..losses.len())
        .map(|i| {
            let from = i.saturating_sub(window - 1);
            let part = &losses[from..=i];
            (
                losses[i].0,
                part.iter().map(|l| l.1).sum::<f64>() / part.len() as f64,
            )
        })
        .collect();
    let series = chart
        .draw_series(LineSeries::new(mean, BLUE.stroke_width(2)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if text {
        series
            .label(format!("mean of {window} steps"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .background_style(WHITE)
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    area.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The evaluations of a run (`{"after_steps", "eval": {name: number}}` lines), one series per
/// name, as `dir/eval.svg` (and `dir/eval.png` with a font); nothing when there are none.
pub fn plot_evals(dir: &Path, title: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut series: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
    for (_, line) in read_lines(&dir.join("metrics.jsonl"))? {
        let (Some(at), Some(eval)) = (line["after_steps"].as_u64(), line["eval"].as_object())
        else {
            continue;
        };
        for (name, value) in eval {
            // Counts and index steps are bookkeeping, not curves.
            if name.starts_with("held_out_queries") || name == "index_step" {
                continue;
            }
            let Some(v) = value.as_f64() else { continue };
            match series.iter_mut().find(|(n, _)| n == name) {
                Some((_, points)) => points.push((at as usize, v)),
                None => series.push((name.clone(), vec![(at as usize, v)])),
            }
        }
    }
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let written = svg_and_png!(dir, "eval", |area, text| draw_evals(
        area, &series, title, text
    ));
    Ok(written)
}

fn draw_evals<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    series: &[(String, Vec<(usize, f64)>)],
    title: &str,
    text: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
    area.fill(&WHITE).map_err(err)?;
    let points = series.iter().flat_map(|(_, p)| p);
    let last = points.clone().map(|p| p.0).max().unwrap_or(0) + 1;
    let low = points
        .clone()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let high = points
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(low + 1e-6);
    let pad = (high - low) * 0.05;
    let mut builder = ChartBuilder::on(&area);
    builder.margin(15);
    if text {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(55);
    }
    let mut chart = builder
        .build_cartesian_2d(0..last, (low - pad)..(high + pad))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if text {
        chart
            .configure_mesh()
            .x_desc("step")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let drawn = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if text {
            drawn
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE)
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    area.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
