//! The command line: one thin file per verb. Verbs parse arguments, call the engine, and print;
//! nothing below `cli` prints.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::error::invalid;
use crate::lab::plan::Name;
use crate::lab::validate::{LoadOptions, Loaded, load};
use crate::lab::{Diagnostic, Source};

mod check;
mod clean;
mod completions;
mod down;
mod exec;
mod graph;
mod list;
pub mod log;
mod logs;
mod nat;
mod new;
mod plan;
mod run;
pub mod schema;
mod shell;
mod show;
mod up;

/// Examples shown at the end of `lab --help`.
const EXAMPLES: &str = "\
Examples:
  lab new my-lab                          write a commented starter lab file, my-lab.toml
  lab check labs/02-cross-host.toml       validate it and show the topology (no root)
  sudo lab run labs/02-cross-host.toml    build it, run it, report, tear down
  sudo lab up labs/02-cross-host.toml     build it and leave it running
  sudo lab shell cross-host c1            a shell inside container c1's namespace
  sudo lab -v down cross-host             remove it, logging what is removed
  lab completions bash > /etc/bash_completion.d/lab";

/// Network labs in Linux namespaces that show what happens to TCP connections behind
/// Docker-style NAT.
#[derive(Debug, Parser)]
#[command(name = "lab", version, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    /// Log what the engine does on stderr: -v steps (namespaces, links, rules), -vv details,
    /// -vvv everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print only errors on stderr (`lab run -q` also hides the live progress).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// How much to log: `-q` here or on `lab run`, else the number of `-v`.
    pub fn verbosity(&self) -> log::Verbosity {
        let run_quiet = matches!(&self.command, Command::Run(a) if a.quiet);
        if self.quiet || run_quiet {
            log::Verbosity::Quiet
        } else {
            log::Verbosity::Verbose(self.verbose)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a lab file and print its topology (no root needed).
    ///
    /// Example: lab check labs/02-cross-host.toml
    ///
    /// Example: lab check labs/02-cross-host.toml --json | jq .prediction
    Check(check::Args),
    /// Build a lab and leave it running.
    ///
    /// Example: sudo lab up labs/02-cross-host.toml
    Up(up::Args),
    /// Build a lab, run its servers and clients, report, check expectations, tear down.
    ///
    /// Example: sudo lab run labs/02-cross-host.toml --out out/
    Run(run::Args),
    /// Remove everything a lab made.
    ///
    /// Example: sudo lab down cross-host
    Down(down::Args),
    /// Show the labs that are up, with their nodes and namespaces.
    ///
    /// Example: sudo lab list
    ///
    /// Example: sudo lab list --json | jq '.[].nodes[] | {name, kind, netns, addresses}'
    List(list::Args),
    /// Run a command inside a node's network namespace.
    ///
    /// LAB_NAME and LAB_NODE are set for the command.
    ///
    /// Example: sudo lab exec cross-host c1 -- ss -s
    Exec(exec::Args),
    /// Show a running lab's NAT: paths, ports used of capacity, the kernel's choices and drops.
    ///
    /// Example: sudo lab nat cross-host client-host
    ///
    /// Example: sudo lab nat cross-host --json | jq '.[].paths'
    Nat(nat::Args),
    /// Print what your own programs (`command = [...]`) wrote in a running lab, per process.
    ///
    /// Each log comes under a `==> FILE <==` line, as `tail` prints several files; a NODE
    /// keeps a host's servers or a container's clients. The logs go with the lab at teardown
    /// (`lab run --out DIR` keeps a copy in DIR/logs/).
    ///
    /// Example: sudo lab logs my-bench server-host --tail 20
    Logs(logs::Args),
    /// Print the `ip`, `nft` and `sysctl` commands that build a lab by hand, or the lab on Docker.
    ///
    /// Example: lab show labs/02-cross-host.toml --commands
    ///
    /// Example: lab show labs/04-more-source-addresses.toml --docker compose
    Show(show::Args),
    /// Write the topology as Mermaid or Graphviz DOT.
    ///
    /// Example: lab graph labs/02-cross-host.toml --format dot -o lab.dot
    #[command(mut_arg("format", |a| a.help("Output format (svg needs Graphviz's `dot`).")))]
    Graph(graph::Args),
    /// Plan the smallest lab that holds N connections, with the limits that decide it.
    ///
    /// Reads this machine's limits (nf_conntrack_max, the open-files limit, fs.file-max,
    /// memory) and finds the fewest client hosts, NAT paths and containers; `--write` writes
    /// the lab file, which `lab run` turns into exactly N established connections. With a
    /// cloud profile (`--nat aws-nat-gateway | gcp-cloud-nat | azure-lb-outbound`) each client
    /// host is one of the cloud's NAT gateways and the cloud's published limits decide the
    /// addresses, VMs and ports per VM.
    ///
    /// Example: lab plan --connections 1000000
    ///
    /// Example: lab plan -n 150000 --nat snat-pool --write both.toml
    ///
    /// Example: lab plan -n 200000 --nat aws-nat-gateway
    ///
    /// Example: lab plan -n 2000 --nat gcp-cloud-nat --ports-per-vm 64 --write gcp.toml
    Plan(plan::Args),
    /// Write a commented starter lab file that `lab check` accepts.
    ///
    /// Example: lab new my-lab  (writes my-lab.toml; `-o PATH` writes elsewhere)
    New(new::Args),
    /// Open an interactive shell inside a node's network namespace.
    ///
    /// The prompt shows the lab and the node; LAB_NAME and LAB_NODE are set. Exit the shell to
    /// leave the namespace.
    ///
    /// Example: sudo lab shell cross-host c1
    Shell(shell::Args),
    /// Print the JSON Schema (draft 2020-12) of the lab-file format, for editors.
    ///
    /// TOML editors such as taplo / Even Better TOML complete and check keys with it.
    ///
    /// Example: lab schema > lab.schema.json
    Schema(schema::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    ///
    /// Example: lab completions bash > /etc/bash_completion.d/lab
    ///
    /// Example: lab completions zsh > "${fpath[1]}/_lab"
    ///
    /// Example: lab completions fish > ~/.config/fish/completions/lab.fish
    Completions(completions::Args),
    /// (internal) A server or client agent inside a lab namespace, started by `lab run`.
    #[command(hide = true)]
    Agent,
    /// Remove what crashed or killed lab processes left behind (labs left up on purpose stay).
    ///
    /// Example: sudo lab clean
    Clean(clean::Args),
}

impl Command {
    /// True for verbs that change nothing on the machine, only print.
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Check(_)
                | Command::Show(_)
                | Command::Graph(_)
                | Command::List(_)
                | Command::Nat(_)
                | Command::Logs(_)
                | Command::Schema(_)
                | Command::Completions(_)
        )
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Up(a) => up::run(a),
        Command::Down(a) => down::run(a),
        Command::List(a) => list::run(a),
        Command::Exec(a) => exec::run(a),
        Command::Clean(a) => clean::run(a),
        Command::Nat(a) => nat::run(a),
        Command::Logs(a) => logs::run(a),
        Command::Run(a) => run::run(a),
        Command::Show(a) => show::run(a),
        Command::Graph(a) => graph::run(a),
        Command::New(a) => new::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Shell(a) => shell::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Completions(a) => completions::run(a),
        // Must run before any thread exists: it enters a namespace and masks signals.
        Command::Agent => crate::workload::agent::main(),
    }
}

/// A lab file that failed to load: every diagnostic, for printing.
pub struct Rejected {
    pub source: Source,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads and validates a lab file. `Err(Ok(rejected))` carries the diagnostics of a bad file;
/// `Err(Err(e))` is a file that could not be read.
pub fn read_lab(path: &Path, name: Option<&str>) -> Result<(Source, Loaded), Result<Rejected>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Err(invalid(format!(
            "cannot read lab file {}: {e}",
            path.display()
        )))
    })?;
    let source = Source::new(path.display().to_string(), text);
    let name = name
        .map(|n| Name::new(n).map_err(|e| invalid(format!("--name: {e}"))))
        .transpose()
        .map_err(Err)?;
    match load(&source, &LoadOptions { name }) {
        Ok(loaded) => {
            tracing::info!(
                file = %path.display(),
                lab = %loaded.plan.name,
                namespaces = loaded.plan.namespaces().len(),
                warnings = loaded.warnings.len(),
                "lab file is valid"
            );
            Ok((source, loaded))
        }
        Err(diagnostics) => Err(Ok(Rejected {
            source,
            diagnostics,
        })),
    }
}

/// Reads and validates a lab file for a verb that goes on to build it: prints warnings, or
/// every problem and a one-line summary.
pub fn load_lab(path: &Path, name: Option<&str>) -> Result<Loaded> {
    match read_lab(path, name) {
        Ok((source, loaded)) => {
            for w in &loaded.warnings {
                eprint!("{}", source.render(w));
            }
            Ok(loaded)
        }
        Err(Err(e)) => Err(e),
        Err(Ok(rejected)) => {
            for d in &rejected.diagnostics {
                eprint!("{}", rejected.source.render(d));
            }
            Err(rejection_summary(&rejected))
        }
    }
}

pub fn rejection_summary(r: &Rejected) -> anyhow::Error {
    let n = r.diagnostics.iter().filter(|d| d.is_error()).count();
    invalid(format!(
        "{}: {n} error{} in the lab file; nothing was built",
        r.source.path,
        if n == 1 { "" } else { "s" }
    ))
}

/// A multi-threaded runtime for verbs that talk netlink. Two workers: the work is kernel-bound.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Absolute form of a path for records, so `lab list` can say where a lab came from.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Ignores SIGINT, SIGTERM and SIGHUP while alive, for synchronous teardowns: a removal cut
/// short by Ctrl-C would leave a half-removed lab, and removal is quick.
pub struct DeferSignals {
    previous: Vec<(i32, libc::sighandler_t)>,
}

impl DeferSignals {
    pub fn new() -> Self {
        let previous = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
            .into_iter()
            .map(|sig| (sig, crate::sys::set_signal_disposition(sig, libc::SIG_IGN)))
            .collect();
        Self { previous }
    }
}

impl Default for DeferSignals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DeferSignals {
    fn drop(&mut self) {
        for &(sig, handler) in &self.previous {
            crate::sys::set_signal_disposition(sig, handler);
        }
    }
}
