//! The `lab` binary: parse the command line, run it, and turn failures into the documented
//! exit codes (0 ok, 1 expectations failed, 2 invalid input, 3 machine cannot run labs,
//! 4 runtime failure, 128+N interrupted by signal N).

use clap::Parser as _;

fn main() {
    let cli = lab::cli::Cli::parse();
    if let Err(err) = lab::cli::run(cli) {
        eprintln!("lab: error: {err:#}");
        std::process::exit(lab::error::exit_code(&err));
    }
}
