//! What `lab run` will start where, for `lab check`: each process of the user's programs with
//! its node and its command line as it will be run (placeholders filled in), the built-in
//! agents in one line per server or client group; and the same as JSON.

use serde::Serialize;

use crate::lab::plan::Plan;
use crate::workload::program::{Planned, planned};

/// Lines shown per server or client group before "... and N more".
const SHOWN: usize = 3;
/// Containers named on a built-in client group's line before "and N more".
const NAMED: usize = 8;

/// One process of the user's programs, in `lab check --json`'s `programs`.
#[derive(Debug, Serialize)]
pub struct Program {
    pub role: &'static str,
    pub name: String,
    pub node: String,
    pub process: u32,
    pub argv: Vec<String>,
}

/// Every process of the user's programs in `plan`, in start order.
pub fn json(plan: &Plan) -> Vec<Program> {
    planned(plan)
        .into_iter()
        .map(|p| Program {
            role: p.role,
            name: p.name,
            node: p.node,
            process: p.process,
            argv: p.launch.argv,
        })
        .collect()
}

/// The paragraph "programs:", or "" for a lab that runs only the built-in agents.
pub fn render(plan: &Plan) -> String {
    let all = planned(plan);
    if all.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nprograms (what `lab run` starts where):\n");
    let of = |role: &str, name: &str| -> Vec<&Planned> {
        all.iter()
            .filter(|p| p.role == role && p.name == name)
            .collect()
    };
    for s in &plan.servers {
        let host = &plan.host(s.host).name;
        if s.command.is_none() {
            out.push_str(&format!("  server {}: built-in, on {host}\n", s.name));
        } else {
            out.push_str(&format!(
                "  server {} runs as {}:\n",
                s.name,
                runs_as(s.user.as_deref())
            ));
            lines(&mut out, &of("server", s.name.as_str()), "on");
        }
    }
    for g in &plan.clients {
        if g.command.is_none() {
            let names: Vec<&str> = g
                .containers
                .iter()
                .map(|&c| plan.container(c).name.as_str())
                .collect();
            let mut shown = names[..names.len().min(NAMED)].join(", ");
            if names.len() > NAMED {
                shown.push_str(&format!(" and {} more", names.len() - NAMED));
            }
            out.push_str(&format!("  client {}: built-in, in {shown}\n", g.name));
        } else {
            out.push_str(&format!(
                "  client {} runs as {}:\n",
                g.name,
                runs_as(g.user.as_deref())
            ));
            lines(&mut out, &of("client", g.name.as_str()), "in");
        }
    }
    out
}

/// Who a program will run as, as `lab run` will decide it on this machine.
fn runs_as(user: Option<&str>) -> String {
    match crate::workload::program::run_as(user) {
        Ok(who) => who.to_string(),
        Err(e) => format!("? ({e:#})"),
    }
}

/// The first processes of one server or client group, then how many more.
fn lines(out: &mut String, procs: &[&Planned], on: &str) {
    for p in procs.iter().take(SHOWN) {
        out.push_str(&format!(
            "    {} {on} {}: {}\n",
            p.label,
            p.node,
            crate::workload::program::display(&p.launch.argv)
        ));
    }
    if procs.len() > SHOWN {
        out.push_str(&format!("    ... and {} more\n", procs.len() - SHOWN));
    }
}
