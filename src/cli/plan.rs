//! `lab plan --connections N [--nat PROFILE]`: read this machine's limits once, plan the
//! smallest lab that holds N (through the kernel's NAT or a cloud's), print it (text or `--json`), and with `--write FILE` write the lab file (never over
//! an existing file). No root, no kernel calls beyond reading /proc and getrlimit.

use std::io::{ErrorKind, Write as _};
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::error::{invalid, unsupported};
use crate::lab::capacity::Resources;
use crate::lab::plan::Name;
use crate::planner::{self, Machine, NatChoice, Request};

/// The NAT to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Nat {
    /// Docker's default: each container leaves as its host's one address.
    Masquerade,
    /// SNAT to a pool of each host's addresses (the kernel hashes each container-server pair).
    SnatPool,
    /// Each client host an AWS NAT gateway: 55,000 connections per address and destination,
    /// up to 8 addresses.
    AwsNatGateway,
    /// Each client host a GCP Cloud NAT gateway (static allocation): each VM a block of
    /// min_ports_per_vm ports, 64,512 / ports VMs per NAT IP.
    #[value(name = "gcp-cloud-nat")]
    GcpCloud,
    /// Each client host an Azure load balancer's outbound SNAT: ports per VM by backend pool
    /// size, times frontend IPs, at most 1,024.
    AzureLbOutbound,
}

impl From<Nat> for NatChoice {
    fn from(n: Nat) -> Self {
        match n {
            Nat::Masquerade => NatChoice::Masquerade,
            Nat::SnatPool => NatChoice::SnatPool,
            Nat::AwsNatGateway => NatChoice::AwsNatGateway,
            Nat::GcpCloud => NatChoice::GcpCloudNat,
            Nat::AzureLbOutbound => NatChoice::AzureLbOutbound,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Connections to hold at once.
    #[arg(long, short = 'n')]
    pub connections: NonZeroU64,
    /// The server's port.
    #[arg(long, default_value_t = planner::DEFAULT_PORT)]
    pub port: NonZeroU16,
    /// Use exactly this many server addresses (default: as few as hold N).
    #[arg(long)]
    pub server_addresses: Option<NonZeroU32>,
    /// Source (SNAT) addresses per client host; more than 1 needs `--nat snat-pool` or a cloud
    /// profile (an AWS gateway's addresses, up to 8; GCP's NAT IPs; Azure's frontend IPs).
    #[arg(long)]
    pub source_addresses: Option<NonZeroU32>,
    /// Use exactly this many containers per client host.
    #[arg(long)]
    pub containers_per_host: Option<NonZeroU32>,
    /// The NAT of the client hosts; a cloud profile plans with the cloud's published limits,
    /// each client host one of its NAT gateways.
    #[arg(long, value_enum, default_value_t = Nat::Masquerade)]
    pub nat: Nat,
    /// GCP's min_ports_per_vm: a power of two from 2 to 32768 (default: the plan picks the
    /// smallest block that needs the fewest NAT IPs and VMs; GCP's own default is 64).
    #[arg(long, value_name = "PORTS")]
    pub ports_per_vm: Option<NonZeroU32>,
    /// Plan as if nf_conntrack_max were this (what-if; the machine is not changed).
    #[arg(long, value_name = "ENTRIES")]
    pub conntrack_max: Option<NonZeroU64>,
    /// Plan as if a process could open this many files (what-if; `lab run` uses the real
    /// limit, so it may start other process counts).
    #[arg(long, value_name = "FILES")]
    pub open_files: Option<NonZeroU64>,
    /// The written lab's name.
    #[arg(long, default_value = "planned")]
    pub name: String,
    /// Write the planned lab file here (never over an existing file).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Print one JSON document (docs/schema/plan.schema.json) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let name = Name::new(&args.name).map_err(|e| invalid(format!("--name: {e}")))?;
    let mut resources = Resources::read();
    if let Some(v) = args.conntrack_max {
        resources.conntrack_max = Some(v.get());
    }
    if let Some(v) = args.open_files {
        resources.open_files_per_process = Some(v.get());
    }
    let machine = Machine::from_resources(&resources)?;
    let request = Request {
        connections: args.connections,
        port: args.port,
        nat: args.nat.into(),
        server_addresses: args.server_addresses,
        source_addresses: args.source_addresses,
        containers_per_host: args.containers_per_host,
        ports_per_vm: args.ports_per_vm,
    };
    let layout = planner::plan(&request, &machine, name.as_str())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&layout)?);
    } else {
        print!("{}", crate::report::plan::render(&layout));
    }
    if !layout.problems.is_empty() {
        return Err(unsupported(format!(
            "this machine cannot hold the plan: {}",
            layout.problems.join("; ")
        )));
    }
    if let Some(path) = &args.write {
        let shown = path.display().to_string();
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(invalid(format!(
                    "{shown} exists already; `lab plan --write` never overwrites a file"
                )));
            }
            Err(e) => return Err(e).with_context(|| format!("create {shown}")),
        };
        file.write_all(layout.lab_file.as_bytes())
            .with_context(|| format!("write {shown}"))?;
        super::log::status!("wrote {shown}: `lab check {shown}`, then `sudo lab run {shown}`.");
    }
    Ok(())
}
