//! `lab graph FILE`: the topology as Mermaid (default) or Graphviz DOT.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::load_lab;
use crate::report::graph;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file (TOML).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let plan = load_lab(&args.file, None)?.plan;
    let text = match args.format {
        Format::Mermaid => graph::mermaid(&plan),
        Format::Dot => graph::dot(&plan),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
