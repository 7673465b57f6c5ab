//! `lab schema`: the JSON Schema (draft 2020-12) of the lab-file format, for editors (taplo /
//! Even Better TOML complete and check TOML keys with a JSON Schema).
//!
//! The loader (`lab::spec`, `lab::validate`) is hand-written, so the schema is a checked-in
//! file; `tests/cli.rs` proves they agree: every lab in `labs/` validates against it, and each
//! table's keys are exactly the ones the loader accepts.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// The schema, as `lab schema` prints it.
pub const LAB_SCHEMA: &str = include_str!("lab.schema.json");

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the schema here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    match &args.output {
        Some(path) => {
            std::fs::write(path, LAB_SCHEMA).with_context(|| format!("write {}", path.display()))
        }
        None => std::io::stdout()
            .lock()
            .write_all(LAB_SCHEMA.as_bytes())
            .context("write the schema to stdout"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_is_json_of_draft_2020_12() {
        let v: serde_json::Value = serde_json::from_str(super::LAB_SCHEMA).expect("valid JSON");
        assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
}
