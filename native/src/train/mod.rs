//! The files and signals of a training run, shared by every trainer: the run directory with
//! its atomic checkpoints and resume (`run_dir`), one JSON line of metrics per step
//! (`metrics`) and its curves as SVG and PNG (`plot`), Ctrl-C as "finish the step, save, exit"
//! (`stop`), the data order (`order`), the step loop itself (`steps`), and the index refreshed
//! in the background while REALM pre-trains (`refresh`).

pub mod metrics;
pub mod order;
pub mod plot;
pub mod refresh;
pub mod run_dir;
pub mod steps;
pub mod stop;
