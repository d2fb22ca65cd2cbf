//! The `realm` command line: a thin layer that turns flags into `realm-core` and
//! `realm-shaders` calls and prints their results.

mod demo;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "realm",
    version,
    about = "REALM retrieval-augmented language models, natively and on your GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walking skeleton: embed a handful of passages with a tiny seeded REALM embedder, then
    /// retrieve the top passages for each question on the CPU reference and the WGSL kernel.
    Demo(demo::DemoArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
