//! `lab list`: the labs that have a record, their state and their nodes.

use anyhow::Result;

use crate::lab::netlink::netns_exists;
use crate::lab::plan::NetnsName;
use crate::lab::state::{Phase, Record};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut labs = Vec::new();
    for name in Record::list()? {
        if let Ok(r) = Record::open(&name) {
            labs.push(r.state);
        }
    }
    if args.json {
        let doc: Vec<_> = labs
            .iter()
            .map(|s| {
                serde_json::json!({
                    "lab": s.lab, "status": status(s), "file": s.file, "phase": s.phase,
                    "owner_pid": s.owner.map(|o| o.pid), "nodes": s.nodes(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if labs.is_empty() {
        println!("no labs are up");
        return Ok(());
    }
    for s in &labs {
        let file = s
            .file
            .as_ref()
            .map(|f| format!("  ({})", f.display()))
            .unwrap_or_default();
        println!("{}  {}{file}", s.lab, status(s));
        for n in &s.nodes() {
            let present = netns_exists(&NetnsName::from_state(n.netns.clone()));
            println!(
                "  {:<10} {:<16} {:<28} {}{}",
                n.kind,
                n.name,
                n.netns,
                n.addresses.join(", "),
                if present { "" } else { "  [namespace missing]" }
            );
        }
    }
    Ok(())
}

fn status(s: &crate::lab::state::LabState) -> String {
    let owner = s.owner.map(|o| o.pid);
    match (s.phase, s.is_live()) {
        (Phase::Up, _) => "up".into(),
        (phase, true) => format!("{} by pid {}", phase_word(phase), owner.unwrap_or(0)),
        (phase, false) => format!("left behind while {} (run `lab clean`)", phase_word(phase)),
    }
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Building => "being built",
        Phase::Up => "up",
        Phase::Running => "running",
        Phase::TearingDown => "being torn down",
    }
}
