//! Training curves from `metrics.jsonl`: the loss of every step and its running mean over 25
//! steps, written beside the metrics as `loss.svg` and `loss.png`, and the held-out
//! evaluations (ICT's accuracy, pre-training's retrieval utility) as `eval.svg`/`eval.png`;
//! and one evaluation of several runs in one chart (`realm plot --metric`). Text is drawn with
//! DejaVu Sans from the system's fonts (`scripts/setup.sh` installs it); without it only the
//! SVG, whose text the viewer renders, is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::prelude::*;
use tempfile::TempPath;

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
/// browser reloading the run's page) never sees half a file, and two processes drawing the
/// same chart at once (a trainer and `realm plot` on its run) each draw into their own
/// temporary file (removed if not renamed). The extension stays last, which the PNG encoder
/// reads.
fn drawing_path(dir: &Path, stem: &str, ext: &str) -> anyhow::Result<(TempPath, PathBuf)> {
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{stem}-"))
        .suffix(&format!(".partial.{ext}"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?
        .into_temp_path();
    Ok((partial, dir.join(format!("{stem}.{ext}"))))
}

fn rename(from: TempPath, to: &Path) -> anyhow::Result<()> {
    let shown = from.display().to_string();
    from.persist(to)
        .with_context(|| format!("renaming {shown} to {}", to.display()))?;
    // A temporary file is private (0600); the chart is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the permissions of {}", to.display()))?;
    }
    Ok(())
}

/// Draws one chart into `dir/<stem>.svg` (text drawn when a font is found) and, with a font,
/// `dir/<stem>.png`, each through a temporary file renamed over it; evaluates to the files
/// written. `$draw` is called as `$draw(area, text)` once per backend.
macro_rules! svg_and_png {
    ($dir:expr, $stem:expr, |$area:ident, $text:ident| $draw:expr) => {{
        let has_font = register_font();
        let mut written = Vec::new();
        let (partial, svg) = drawing_path($dir, $stem, "svg")?;
        {
            let $area = SVGBackend::new(&*partial, (900, 500)).into_drawing_area();
            let $text = has_font;
            $draw.with_context(|| format!("drawing {}", svg.display()))?;
        }
        rename(partial, &svg)?;
        written.push(svg);
        if has_font {
            let (partial, png) = drawing_path($dir, $stem, "png")?;
            {
                let $area = BitMapBackend::new(&*partial, (900, 500)).into_drawing_area();
                let $text = true;
                $draw.with_context(|| format!("drawing {}", png.display()))?;
            }
            rename(partial, &png)?;
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

/// A run's held-out evaluations, by name in order of first appearance: the points
/// (`after_steps`, value) of the `{"after_steps", "eval": {name: number}}` lines of a
/// metrics file.
type Evals = Vec<(String, Vec<(usize, f64)>)>;

fn read_evals(metrics: &Path) -> anyhow::Result<Evals> {
    let mut series: Evals = Vec::new();
    for (_, line) in read_lines(metrics)? {
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
    Ok(series)
}

/// The evaluations of a run, one series per name, as `dir/eval.svg` (and `dir/eval.png` with
/// a font); nothing when there are none.
pub fn plot_evals(dir: &Path, title: &str) -> anyhow::Result<Vec<PathBuf>> {
    let series = read_evals(&dir.join("metrics.jsonl"))?;
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let written = svg_and_png!(dir, "eval", |area, text| draw_evals(
        area, &series, title, text
    ));
    Ok(written)
}

/// A run's name in a comparison: its folder's name, for a metrics file named `metrics.jsonl`
/// its folder's, else the file's stem without an `-evals` suffix (the evaluations kept in
/// `native/results/`).
fn run_name(run: &Path) -> String {
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = if run.is_dir() {
        named(run)
    } else if run.file_name().is_some_and(|n| n == "metrics.jsonl") {
        run.parent().and_then(named)
    } else {
        run.file_stem().map(|stem| {
            let stem = stem.to_string_lossy();
            stem.strip_suffix("-evals").unwrap_or(&stem).to_owned()
        })
    };
    name.unwrap_or_else(|| run.display().to_string())
}

/// One held-out evaluation of several runs in one chart, a curve per run (named by
/// [`run_name`], or by its path where two names agree): `out` must end in `.svg`; the PNG goes
/// beside it when a font is found.
/// A run is a run directory (its `metrics.jsonl`) or a file of such lines.
pub fn plot_compare(
    runs: &[PathBuf],
    metric: &str,
    out: &Path,
    force: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    if out.extension().is_none_or(|e| e != "svg") {
        bail!(
            "--out {}: name the chart's SVG file (e.g. compare.svg; the PNG goes beside it)",
            out.display()
        );
    }
    let mut series = Vec::new();
    for run in runs {
        let file = if run.is_dir() {
            run.join("metrics.jsonl")
        } else {
            run.clone()
        };
        let evals = read_evals(&file)?;
        let Some((_, points)) = evals.iter().find(|(n, _)| n == metric) else {
            if evals.is_empty() {
                bail!("{}: no held-out evaluations in it", file.display());
            }
            let names: Vec<&str> = evals.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "{}: no evaluation named {metric}; it has {}",
                file.display(),
                names.join(", ")
            );
        };
        series.push((run_name(run), points.clone()));
    }
    // Runs of one name (runs/a/x and runs/b/x) are told apart by their paths as given.
    let mut names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        for ((name, _), run) in series.iter_mut().zip(runs) {
            *name = run.display().to_string();
        }
    }
    // Checked once the runs are read (their errors first), before anything is drawn.
    let png = out.with_extension("png");
    if let Some(existing) = [out, png.as_path()].into_iter().find(|p| p.exists())
        && !force
    {
        bail!(
            "{} exists; pass --force to replace it (and the chart's other file)",
            existing.display()
        );
    }
    let inputs: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
    crate::files::check_out(out, true, &inputs)?;
    crate::files::check_out(&png, true, &inputs)?;
    let dir = crate::files::folder_of(out);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out {}: cannot make its folder", out.display()))?;
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let title = format!("realm: {metric}");
    let written = svg_and_png!(dir, &stem, |area, text| draw_evals(
        area, &series, &title, text
    ));
    Ok(written)
}

/// A tick's value with `decimals` places, and "0.00" rather than "-0.00" for a value a rounding
/// below zero.
fn tick_label(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
        _ => text,
    }
}

/// Curves' colours, distinct on white (Tableau 10's first eight).
const SERIES_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

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
    // Enough decimals that ticks a tenth of the range apart read differently.
    let decimals = ((-(high - low).log10()).ceil() as i64 + 1).clamp(2, 6) as usize;
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
            .y_label_formatter(&|v| tick_label(*v, decimals))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let color = SERIES_COLORS[i % SERIES_COLORS.len()];
        let drawn = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if text {
            drawn.label(name.as_str()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
        // A dot at each evaluation: a run evaluated once (stopped early) is a dot, not nothing.
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
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

#[cfg(test)]
mod tests {
    use super::tick_label;

    #[test]
    fn tick_labels_drop_the_sign_of_a_rounded_zero_only() {
        assert_eq!(tick_label(-0.001, 2), "0.00");
        assert_eq!(tick_label(-0.0, 3), "0.000");
        assert_eq!(tick_label(-0.25, 2), "-0.25");
        assert_eq!(tick_label(-0.0012, 4), "-0.0012");
        assert_eq!(tick_label(0.2, 2), "0.20");
    }
}
