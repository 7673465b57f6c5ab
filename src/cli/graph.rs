//! `lab graph FILE`: the topology as Mermaid (default) or Graphviz DOT.

use std::path::PathBuf;

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use crate::error::unsupported;

use super::load_lab;
use crate::report::graph;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
    /// DOT laid out by Graphviz (`dot -Tsvg`), when Graphviz is installed.
    Svg,
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
        Format::Svg => render_svg(&graph::dot(&plan))?,
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

/// Lays out the DOT text with Graphviz. `lab` draws no SVG graphs itself: layout is Graphviz's
/// job, and the Mermaid and DOT outputs need nothing installed.
fn render_svg(dot: &str) -> Result<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Kept for the error message, not left to interleave with lab's own stderr.
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            unsupported(format!(
                "--format svg needs Graphviz's `dot` ({e}); install it (`apt-get install graphviz`) \
                 or use --format dot or mermaid"
            ))
        })?;
    child
        .stdin
        .take()
        .context("dot's stdin")?
        .write_all(dot.as_bytes())
        .context("send the graph to dot")?;
    let out = child.wait_with_output().context("run dot")?;
    if !out.status.success() {
        anyhow::bail!("dot failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8(out.stdout).context("dot wrote something that is not UTF-8")
}
