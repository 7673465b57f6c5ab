//! The `lab` binary: parse the command line, set up logging (`-v`/`-q`), run it, and turn
//! failures into the documented exit codes (0 ok, 1 expectations failed, 2 invalid input,
//! 3 machine cannot run labs, 4 runtime failure, 128+N interrupted by signal N).

use clap::Parser as _;

fn main() {
    // `lab agent` is started by `lab run` a hundred times and more: straight to its loop, so
    // that none of the CLI's code is paged into every agent.
    let agent =
        std::env::args_os().len() == 2 && std::env::args_os().nth(1).is_some_and(|a| a == "agent");
    let result = if agent {
        lab::workload::agent::main()
    } else {
        run_cli()
    };
    if let Err(err) = result {
        eprintln!("{}", lab::error::render(&err));
        std::process::exit(lab::error::exit_code(&err));
    }
}

fn run_cli() -> anyhow::Result<()> {
    let cli = lab::cli::Cli::parse();
    // Verbs that only print may die quietly on a closed pipe (`lab check ... | head`), as
    // Unix tools do. Verbs that build, run or remove a lab keep SIGPIPE ignored: dying halfway
    // would leave the lab behind.
    if cli.command.only_prints() {
        lab::sys::set_signal_disposition(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Agents talk to `lab run` over stdout and must start with no more than they need.
    if !matches!(cli.command, lab::cli::Command::Agent) {
        lab::cli::log::init(cli.verbosity());
    }
    lab::cli::run(cli)
}
