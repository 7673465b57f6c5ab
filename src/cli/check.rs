//! `lab check FILE`: validate and show the topology; no root, no kernel calls.

use std::path::PathBuf;

use anyhow::Result;

use super::{read_lab, rejection_summary};
use crate::lab::capacity::Capacity;
use crate::nat::paths::predict_lab;
use crate::report::{nat, programs, topology};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file (TOML).
    pub file: PathBuf,
    /// Use this lab name instead of the file's `name`.
    #[arg(long)]
    pub name: Option<String>,
    /// Print one JSON document: `ok`, the validated `plan`, the NAT `prediction`, the machine
    /// `capacity` it needs, your `programs` (each process: role, name, node, process, argv),
    /// and `diagnostics` (each with file, line, column, message, help).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    match read_lab(&args.file, args.name.as_deref()) {
        Ok((source, loaded)) => {
            if args.json {
                let warnings: Vec<_> = loaded.warnings.iter().map(|w| source.locate(w)).collect();
                let doc = serde_json::json!({
                    "ok": true,
                    "plan": loaded.plan,
                    "prediction": predict_lab(&loaded.plan),
                    "capacity": Capacity::of(&loaded.plan),
                    "programs": programs::json(&loaded.plan),
                    "diagnostics": warnings,
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                for w in &loaded.warnings {
                    eprint!("{}", source.render(w));
                }
                print!("{}", topology::render(&loaded.plan));
                print!("{}", nat::render_prediction(&predict_lab(&loaded.plan)));
                print!("{}", nat::render_profile_rules(&loaded.plan));
                print!("{}", programs::render(&loaded.plan));
                print!("{}", crate::report::capacity(&Capacity::of(&loaded.plan)));
            }
            Ok(())
        }
        Err(Err(e)) => Err(e),
        Err(Ok(rejected)) => {
            if args.json {
                let located: Vec<_> = rejected
                    .diagnostics
                    .iter()
                    .map(|d| rejected.source.locate(d))
                    .collect();
                let doc = serde_json::json!({ "ok": false, "diagnostics": located });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                for d in &rejected.diagnostics {
                    eprint!("{}", rejected.source.render(d));
                }
            }
            Err(rejection_summary(&rejected))
        }
    }
}
