//! `lab run FILE`: up, servers, clients, watch, report, check expectations, down.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::{absolute, load_lab, runtime};
use crate::error::{Fail, exit};
use crate::lab::fault;
use crate::lab::lifecycle::{Signals, up};
use crate::lab::preflight;
use crate::nat::paths::predict_lab;
use crate::report::live::Live;
use crate::report::run::{RunReport, render, series_csv};
use crate::report::{nat as nat_report, topology};
use crate::workload::run::{RunOptions, StopReason, Workload};

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
    /// Also write report.json, established.csv (time series per client group) and
    /// established.svg (its plot) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop when the counts have not moved for this many seconds.
    #[arg(long, default_value = "3", value_parser = seconds_or_zero)]
    pub settle: Duration,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value = "300", value_parser = seconds)]
    pub timeout: Duration,
    /// Abandon a connect after this many seconds (counted as timed out).
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub connect_timeout: Duration,
    /// Connects in progress at once per client process (at least 1).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub in_flight: u32,
    /// New connects per second per client process, at least 1 (default: as fast as possible).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A number of seconds > 0, such as `2.5` (clap reports a bad one as a usage error, exit 2).
fn seconds(s: &str) -> Result<Duration, String> {
    match seconds_or_zero(s)? {
        d if d.is_zero() => Err("must be more than 0 seconds, e.g. 2.5".into()),
        d => Ok(d),
    }
}

/// A number of seconds >= 0, such as `2.5`.
fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (write e.g. 2.5)"))?;
    Duration::try_from_secs_f64(n)
        .map_err(|_| format!("`{s}` is not a finite number of seconds >= 0 (write e.g. 2.5)"))
}

pub fn run(args: Args) -> Result<()> {
    let loaded = load_lab(&args.file, args.name.as_deref())?;
    let opts = RunOptions {
        settle: args.settle,
        timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        in_flight: args.in_flight,
        rate: args.rate,
    };
    preflight::check_machine()?;
    let plan = loaded.plan;
    let raises = preflight::check_capacity(&plan)?.raises();
    let prediction = predict_lab(&plan);
    if !args.json {
        out!("{}", topology::render(&plan));
        out!("{}", nat_report::render_prediction(&prediction));
    }
    let file = absolute(&args.file);
    let rt = runtime()?;
    let (report, deferred) = rt.block_on(async {
        let mut signals = Signals::catch()?;
        let mut lab = up(plan.clone(), Some(&file), &raises, &mut signals).await?;
        lab.set_running()?;
        // The run: a signal ends it early, and what was measured is still reported.
        let ran = async {
            let mut w = Workload::start_servers(&mut lab, &mut signals).await?;
            w.start_clients(&mut lab, &opts).await?;
            fault::pause("run:ramp").await;
            let mut live = Live::new(super::log::quiet());
            let outcome = w
                .watch(&plan, &opts, &mut signals, |s| {
                    if let Some(text) = live.update(s) {
                        use std::io::Write as _;
                        let _ = std::io::stderr().write_all(text.as_bytes());
                    }
                })
                .await;
            Ok::<_, anyhow::Error>((w, outcome))
        }
        .await;
        let deferred = signals.defer("reporting and tearing down");
        let result = match ran {
            Ok((w, outcome)) => {
                fault::pause("run:report").await;
                // Read the kernel's NAT tables while the connections still exist.
                let nat =
                    super::nat::read_views(&plan, &super::nat::docker_hosts(&plan), &prediction);
                fault::pause("run:stopping").await;
                w.stop().await;
                nat.map(|nat| (outcome, nat))
            }
            Err(e) => Err(e),
        };
        super::log::status!("tearing down lab {}", plan.name);
        let raised = lab.raised().to_vec();
        let down = lab.down();
        let (outcome, nat) = result?;
        down?;
        let mut report = RunReport::new(&plan, outcome, nat, prediction.clone());
        report.raised = raised;
        Ok::<_, anyhow::Error>((report, deferred))
    })?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let groups: Vec<String> = plan.clients.iter().map(|g| g.name.to_string()).collect();
        std::fs::write(dir.join("established.csv"), series_csv(&report, &groups))
            .with_context(|| format!("write {}", dir.join("established.csv").display()))?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", dir.join("report.json").display()))?;
        std::fs::write(dir.join("established.svg"), plot_svg(&report, &groups))
            .with_context(|| format!("write {}", dir.join("established.svg").display()))?;
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
    if let Some(sig) = deferred.received() {
        return Err(Fail::Interrupted(sig).into());
    }
    if !report.outcome.last.dead_agents.is_empty() {
        return Err(anyhow::anyhow!(
            "{} agent(s) died during the run: {}",
            report.outcome.last.dead_agents.len(),
            report.outcome.last.dead_agents.join("; ")
        ));
    }
    if report.expectations_met == Some(false) {
        std::process::exit(exit::EXPECTATIONS_FAILED);
    }
    Ok(())
}

/// The plot of established connections per group and in total, with the capacity of every
/// exhausted NAT path and the expectation as reference lines.
fn plot_svg(report: &RunReport, groups: &[String]) -> String {
    use crate::report::plot::{Line, Mark, svg};
    let series = &report.outcome.series;
    let mut lines: Vec<Line> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| Line {
            label: g.clone(),
            points: series
                .iter()
                .map(|s| (s.t_ms, s.groups.get(i).copied().unwrap_or(0)))
                .collect(),
        })
        .collect();
    if groups.len() > 1 {
        lines.push(Line {
            label: "total".into(),
            points: series.iter().map(|s| (s.t_ms, s.total)).collect(),
        });
    }
    let mut marks: Vec<Mark> = report
        .nat
        .iter()
        .flat_map(|v| v.paths.iter().filter(|p| p.exhausted))
        .map(|p| Mark {
            label: "NAT path full".into(),
            value: u64::from(p.capacity),
        })
        .collect();
    marks.push(Mark {
        label: "asked".into(),
        value: report.asked,
    });
    let title = format!(
        "lab {}: {} of {} connections established",
        report.lab,
        crate::report::count(report.established),
        crate::report::count(report.asked)
    );
    svg(&title, &lines, &marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_and_not_negative() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(seconds_or_zero("0"), Ok(Duration::ZERO));
        for bad in ["-1", "nan", "inf", "", "3s", "1e400"] {
            assert!(seconds_or_zero(bad).is_err(), "{bad}");
        }
        assert!(seconds("0").is_err());
    }
}
