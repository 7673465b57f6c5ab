//! `lab nat LAB [HOST]`: a running lab's NAT as the kernel holds it, beside the prediction.

use anyhow::Result;

use crate::error::invalid;
use crate::lab::plan::HostId;
use crate::lab::preflight;
use crate::lab::state::Record;
use crate::nat::paths::predict_lab;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name (see `lab list`).
    pub lab: String,
    /// One host; by default every host with a docker bridge.
    pub host: Option<String>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    preflight::check_machine()?;
    let record = Record::open(&args.lab)?;
    let plan = &record.state.plan;
    let hosts: Vec<HostId> = match &args.host {
        Some(name) => {
            let Some(i) = plan.hosts.iter().position(|h| h.name.as_str() == name) else {
                let names: Vec<&str> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
                return Err(invalid(format!(
                    "lab {} has no host {name}; its hosts are: {}",
                    args.lab,
                    names.join(", ")
                )));
            };
            vec![HostId(i)]
        }
        None => crate::nat::docker_hosts(plan),
    };
    let views = crate::nat::read_views(plan, &hosts, &predict_lab(plan))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        for v in &views {
            print!("{}", report::nat::render_view(v));
        }
    }
    Ok(())
}
