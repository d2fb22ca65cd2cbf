//! The files and signals of a training run, shared by every trainer: the run directory with
//! its atomic checkpoints and resume (`run_dir`), one JSON line of metrics per step
//! (`metrics`) and its curves as SVG and PNG (`plot`), Ctrl-C as "finish the step, save, exit"
//! (`stop`), the data order (`order`), and the step loop itself (`steps`).

pub mod metrics;
pub mod order;
pub mod plot;
pub mod run_dir;
pub mod steps;
pub mod stop;
