//! `lab run FILE`: the engine runs the lab (`workload::session`); this renders what it says
//! and found, writes `--out`, and turns the outcome into the exit code.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::{absolute, load_lab, runtime};
use crate::error::{Fail, invalid};
use crate::lab::plan::Hold;
use crate::nat::live::StatsReader;
use crate::report::live::Live;
use crate::report::run::{RunReport, established_svg, render, series_csv};
use crate::report::{html, nat as nat_report, topology};
use crate::workload::options::RunOptions;
use crate::workload::outcome::StopReason;
use crate::workload::session;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file (TOML).
    pub file: PathBuf,
    /// Use this lab name instead of the file's `name`.
    #[arg(long)]
    pub name: Option<String>,
    /// Print the report as one JSON document on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write report.json, established.csv (time series per client group),
    /// established.svg (its plot) and report.html (the whole report on one self-contained
    /// page, to share or project) here, and your programs' logs into DIR/logs/ (a symlink as
    /// DIR is refused; nothing is written outside it).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop when the counts have not moved for this long: seconds (`2.5`) or with a unit
    /// (`500ms`, `3s`, `1m`). Default: the file's [run] settle, else 3 s.
    #[arg(long, value_parser = seconds_or_zero)]
    pub settle: Option<Duration>,
    /// Stop after this long whatever happens. Default: the file's [run] timeout, else 5 min.
    #[arg(long, value_parser = seconds)]
    pub timeout: Option<Duration>,
    /// After the ramp settles, hold every connection open this long (`30s`, `5m`), or
    /// `forever` (until Ctrl-C). Default: the file's [run] hold, else no hold.
    #[arg(long, value_parser = hold)]
    pub hold: Option<Hold>,
    /// Built-in clients: abandon a connect after this long (counted as timed out). Default:
    /// each client's connect_timeout in the file, else 10 s.
    #[arg(long, value_parser = seconds)]
    pub connect_timeout: Option<Duration>,
    /// Built-in clients: connects in progress at once per container (at least 1). Default:
    /// each client's in_flight in the file, else 8192 per process.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub in_flight: Option<u32>,
    /// Built-in clients: new connects per second per container, at least 1. Default: each
    /// client's rate in the file, else as fast as possible.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// No NAT panel in the live view: the Docker hosts' conntrack counters are then not read
    /// during the ramp (to compare a benchmark with and without it).
    #[arg(long)]
    pub no_nat_panel: bool,
}

/// How often the live view's NAT panel reads the Docker hosts' conntrack counters.
const NAT_READ_EVERY: Duration = Duration::from_millis(500);

/// A number of seconds > 0, such as `2.5` (clap reports a bad one as a usage error, exit 2).
fn seconds(s: &str) -> Result<Duration, String> {
    match seconds_or_zero(s)? {
        d if d.is_zero() => Err("must be more than 0 seconds, e.g. 2.5".into()),
        d => Ok(d),
    }
}

/// A duration >= 0: a number of seconds such as `2.5`, or with a unit as in the lab file
/// (`500ms`, `3s`, `2m`, `1h`).
fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim().ends_with(|c: char| c.is_ascii_alphabetic()) {
        return crate::lab::validate::parse_duration(s)
            .map_err(|e| format!("`{s}`: {e} (write e.g. 2.5, 500ms or 3s)"));
    }
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (write e.g. 2.5 or 3s)"))?;
    Duration::try_from_secs_f64(n)
        .map_err(|_| format!("`{s}` is not a finite number of seconds >= 0 (write e.g. 2.5)"))
}

/// `forever`, or a duration as for `--settle`.
fn hold(s: &str) -> Result<Hold, String> {
    if s.trim() == "forever" {
        return Ok(Hold::Forever);
    }
    seconds_or_zero(s).map(Hold::For)
}

/// `--out DIR`, made if missing before anything runs: a symlink is refused, so that what is
/// written lands inside DIR itself.
fn out_dir(dir: &Path) -> Result<PathBuf> {
    if dir.is_symlink() {
        return Err(invalid(format!(
            "--out {}: is a symlink; give a directory itself",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if !dir.is_dir() {
        return Err(invalid(format!("--out {}: not a directory", dir.display())));
    }
    Ok(dir.to_path_buf())
}

pub fn run(args: Args) -> Result<()> {
    let loaded = load_lab(&args.file, args.name.as_deref())?;
    let opts = RunOptions {
        settle: args.settle,
        timeout: args.timeout,
        hold: args.hold,
        connect_timeout: args.connect_timeout,
        in_flight: args.in_flight,
        rate: args.rate,
    };
    let out_dir = args.out.as_deref().map(out_dir).transpose()?;
    let mut prepared = session::prepare(loaded.plan)?;
    for w in &prepared.warnings {
        errln!("lab: warning: {w}");
    }
    if let Some(dir) = &out_dir {
        prepared = prepared.copy_logs_to(&dir.join("logs"));
    }
    if !args.json {
        out!("{}", topology::render(&prepared.plan));
        out!("{}", nat_report::render_prediction(&prepared.prediction));
    }
    let file = absolute(&args.file);
    let quiet = super::log::quiet();
    let mut live = Live::new(quiet, std::io::stderr().is_terminal());
    let mut reader = None;
    if !args.no_nat_panel && !quiet {
        live = live.with_nat(&prepared.prediction);
        if live.has_nat() {
            reader = StatsReader::start(&prepared.plan, NAT_READ_EVERY);
        }
    }
    let ran = runtime()?.block_on(prepared.run(Some(&file), &opts, |s| {
        use std::io::Write as _;
        use std::os::fd::AsFd as _;
        let start = std::time::Instant::now();
        // Never waits: a reading is taken when one has finished, on the reader's own thread.
        let reading = reader.as_mut().and_then(StatsReader::poll);
        if let Some(r) = &reading {
            live.nat_reading(r);
        }
        let stderr = std::io::stderr();
        live.set_size(crate::sys::terminal_size(stderr.as_fd()));
        if let Some(text) = live.update(s) {
            let _ = stderr.lock().write_all(text.as_bytes());
        }
        if let Some(r) = reading {
            tracing::debug!(
                "live view: frame drawn in {} us; the conntrack counters it shows took {} us to read",
                start.elapsed().as_micros(),
                r.took.as_micros()
            );
        }
    }))?;
    // Its thread ends after the reading in progress, if any.
    drop(reader);
    let report = RunReport::new(&ran.plan, ran.outcome, ran.nat, ran.prediction, ran.raised);
    let groups: Vec<String> = ran
        .plan
        .clients
        .iter()
        .map(|g| g.name.to_string())
        .collect();
    if let Some(dir) = &out_dir {
        let write = |name: &str, bytes: &[u8]| {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let path = dir.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .and_then(|mut f| f.write_all(bytes))
                .with_context(|| format!("write {}", path.display()))
        };
        write("established.csv", series_csv(&report, &groups).as_bytes())?;
        write("report.json", &serde_json::to_vec_pretty(&report)?)?;
        write(
            "established.svg",
            established_svg(&report, &groups).as_bytes(),
        )?;
        write(
            "report.html",
            html::page(&report, &ran.plan, &groups).as_bytes(),
        )?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", render(&report));
    }
    if let StopReason::Interrupted(sig) = report.outcome.stop {
        return Err(Fail::Interrupted(sig).into());
    }
    // A signal after the run settled did not cut the report or teardown short, but it still
    // says how the run ended.
    if let Some(sig) = ran.signal_after_settle {
        return Err(Fail::Interrupted(sig).into());
    }
    if !report.outcome.last.dead_agents.is_empty() {
        return Err(anyhow::anyhow!(
            "{} agent(s) died during the run: {}",
            report.outcome.last.dead_agents.len(),
            report.outcome.last.dead_agents.join("; ")
        ));
    }
    let unmet: Vec<String> = report
        .expectations
        .iter()
        .filter(|c| !c.met)
        .map(|c| format!("{} = {}: got {}", c.what, c.expected, c.actual))
        .collect();
    if !unmet.is_empty() {
        return Err(Fail::ExpectationsNotMet(unmet.join("; ")).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_and_not_negative() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(seconds_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(seconds("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(seconds_or_zero("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(hold("forever"), Ok(Hold::Forever));
        assert_eq!(hold("1m"), Ok(Hold::For(Duration::from_secs(60))));
        for bad in ["-1", "nan", "inf", "", "3x", "1e400", "soon"] {
            assert!(seconds_or_zero(bad).is_err(), "{bad}");
        }
        assert!(seconds("0").is_err());
    }
}
