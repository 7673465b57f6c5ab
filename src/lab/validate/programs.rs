//! The user's own programs and the run's pace: `command` (placeholders checked with their
//! column, an absolute executable that is not there), `processes`, the built-in client's
//! `connect_timeout`, `rate` and `in_flight`, and `[run]` (`settle`, `timeout`, `hold`).

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use crate::lab::command::{Command, Role, Template};
use crate::lab::diag::Diagnostic;
use crate::lab::plan::{Hold, Pacing, RunSettings, Sysctl};
use crate::lab::spec::{ClientSpec, RunSpec, Spanned, StringList};

use super::values::parse_duration;

/// What Docker sets in every container's namespace, so that programs without privilege may
/// listen on low ports and ping.
pub const CONTAINER_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

/// What a host gets where an unprivileged program listens: low ports for everyone.
pub(super) const PROGRAM_HOST_SYSCTLS: [(&str, &str); 1] =
    [("net.ipv4.ip_unprivileged_port_start", "0")];

/// Adds `defaults` the lab file does not set itself, after its own.
pub(super) fn with_defaults(sysctls: &mut Vec<Sysctl>, defaults: &[(&str, &str)]) {
    for (key, value) in defaults {
        if !sysctls.iter().any(|s| s.key() == *key)
            && let Ok(s) = Sysctl::new(key, value)
        {
            sysctls.push(s);
        }
    }
}

/// More copies of one program than this is a typo, not a load test.
const MAX_PROCESSES: i64 = 1024;

/// `command = ["prog", "arg", ...]` of a `role`.
pub(super) fn command(list: &StringList, role: Role, d: &mut Vec<Diagnostic>) -> Option<Command> {
    let Some(first) = list.value.first() else {
        d.push(
            Diagnostic::error(list.span.clone(), "`command` is empty")
                .with_help("write the program and its arguments, like [\"/opt/bench/server\", \"-l\", \"0.0.0.0:{port}\"]"),
        );
        return None;
    };
    let mut argv = Vec::new();
    let mut ok = true;
    for raw in &list.value {
        match Template::parse(&raw.value, role) {
            Ok(t) => argv.push(t),
            Err(e) => {
                ok = false;
                // The span starts at the opening quote.
                let at = raw.span.start + 1 + e.at;
                d.push(Diagnostic::error(at..at + 1, e.message).with_help(e.help));
            }
        }
    }
    let program = argv.first().and_then(Template::literal);
    match program {
        None if ok => {
            d.push(
                Diagnostic::error(
                    first.span.clone(),
                    "the program's name cannot have placeholders",
                )
                .with_help("name the executable itself, and pass values as arguments"),
            );
            ok = false;
        }
        Some("") => {
            d.push(Diagnostic::error(
                first.span.clone(),
                "the program's name is empty",
            ));
            ok = false;
        }
        Some(p) if Path::new(p).is_absolute() && !is_executable(Path::new(p)) => {
            let why = if Path::new(p).exists() {
                "is not an executable file"
            } else {
                "does not exist"
            };
            d.push(
                Diagnostic::error(first.span.clone(), format!("`{p}` {why}"))
                    .with_help("give the path of the program on this machine (it runs inside the lab's namespaces, with this machine's files)"),
            );
            ok = false;
        }
        _ => {}
    }
    ok.then_some(Command { argv })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `user = "name"`: a user of this machine, and only with a command of the user's own (the
/// built-in agents need root for nothing either, but are `lab` itself).
pub(super) fn user(
    raw: &Spanned<String>,
    command: bool,
    d: &mut Vec<Diagnostic>,
) -> Option<String> {
    if !command {
        d.push(
            Diagnostic::error(raw.span.clone(), "`user` applies to a `command` only")
                .with_help("the built-in server and client are lab's own; remove `user`, or add the program to run as that user"),
        );
        return None;
    }
    match crate::sys::user_by_name(&raw.value) {
        Ok(Some(_)) => Some(raw.value.clone()),
        Ok(None) => {
            d.push(
                Diagnostic::error(raw.span.clone(), format!("no user `{}` on this machine", raw.value))
                    .with_help("name a user of this machine (getent passwd), or leave `user` out: programs run as the user who ran sudo, else as nobody"),
            );
            None
        }
        Err(e) => {
            d.push(Diagnostic::error(
                raw.span.clone(),
                format!("cannot look up user `{}`: {e}", raw.value),
            ));
            None
        }
    }
}

/// `processes = N`, 1 to [`MAX_PROCESSES`].
pub(super) fn processes(raw: &Spanned<i64>, d: &mut Vec<Diagnostic>) -> Option<NonZeroU32> {
    if !(1..=MAX_PROCESSES).contains(&raw.value) {
        d.push(Diagnostic::error(
            raw.span.clone(),
            format!("`processes = {}`: expected 1 to {MAX_PROCESSES}", raw.value),
        ));
        return None;
    }
    u32::try_from(raw.value).ok().and_then(NonZeroU32::new)
}

/// The built-in client's pace, as the file sets it.
pub(super) fn pacing(spec: &ClientSpec, d: &mut Vec<Diagnostic>) -> Option<Pacing> {
    let mut ok = true;
    let mut pacing = Pacing::default();
    if let Some(raw) = &spec.connect_timeout {
        pacing.connect_timeout = duration(raw, "connect_timeout", false, d);
        ok &= pacing.connect_timeout.is_some();
    }
    if let Some(raw) = &spec.rate {
        pacing.rate = positive(raw, "rate", "new connects per second per container", d);
        ok &= pacing.rate.is_some();
    }
    if let Some(raw) = &spec.in_flight {
        pacing.in_flight = positive(raw, "in_flight", "connects in progress per container", d);
        ok &= pacing.in_flight.is_some();
    }
    ok.then_some(pacing)
}

/// `[run]`.
pub(super) fn run_settings(spec: Option<&RunSpec>, d: &mut Vec<Diagnostic>) -> RunSettings {
    let Some(spec) = spec else {
        return RunSettings::default();
    };
    RunSettings {
        settle: spec
            .settle
            .as_ref()
            .and_then(|raw| duration(raw, "settle", true, d)),
        timeout: spec
            .timeout
            .as_ref()
            .and_then(|raw| duration(raw, "timeout", false, d)),
        hold: spec.hold.as_ref().and_then(|raw| hold(raw, d)),
    }
}

fn hold(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Hold> {
    if raw.value.trim() == "forever" {
        return Some(Hold::Forever);
    }
    duration(raw, "hold", true, d).map(Hold::For)
}

fn duration(
    raw: &Spanned<String>,
    key: &str,
    zero_ok: bool,
    d: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let help = if key == "hold" {
        "write a number and a unit (\"30s\", \"500ms\", \"5m\", \"1h\"), or \"forever\" for until Ctrl-C"
    } else {
        "write a number and a unit: \"3s\", \"500ms\", \"5m\", \"1h\""
    };
    match parse_duration(&raw.value) {
        Ok(v) if v.is_zero() && !zero_ok => {
            d.push(
                Diagnostic::error(raw.span.clone(), format!("`{key}` cannot be zero"))
                    .with_help(help),
            );
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            d.push(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("invalid duration `{}`: {e}", raw.value),
                )
                .with_help(help),
            );
            None
        }
    }
}

fn positive(
    raw: &Spanned<i64>,
    key: &str,
    what: &str,
    d: &mut Vec<Diagnostic>,
) -> Option<NonZeroU32> {
    let n = u32::try_from(raw.value).ok().and_then(NonZeroU32::new);
    if n.is_none() {
        d.push(Diagnostic::error(
            raw.span.clone(),
            format!("`{key} = {}`: expected 1 to {} {what}", raw.value, u32::MAX),
        ));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ok, rejected, reported, with};
    use super::*;
    use crate::lab::command::Var;

    /// Lines 7-12 are containers and a server; `server` is appended to [servers.s] (line 13),
    /// then [clients.l] with `client` (from line 15).
    fn lab(server: &str, client: &str) -> String {
        with(&format!(
            "[containers.c]\nhost = \"a\"\nreplicas = 2\n[servers.s]\nhost = \"a\"\nport = 9000\n\
             {server}\n[clients.l]\ncontainers = [\"c\"]\nconnect = [\"10.0.0.1:9000\"]\n\
             connections = 10\n{client}\n"
        ))
    }

    #[test]
    fn programs_pacing_and_run_are_read() {
        let text = format!(
            "{}[run]\nsettle = \"2s\"\ntimeout = \"5m\"\nhold = \"forever\"\n",
            lab(
                "command = [\"/bin/sh\", \"-c\", \"exec srv {port}\"]\nprocesses = 4",
                "command = [\"client\", \"-t\", \"{target}\", \"-n\", \"{connections}\"]\n\
                 processes = 2\nconnect_timeout = \"3s\"\nrate = 5000\nin_flight = 4096"
            )
        );
        let plan = ok(&text).plan;
        let s = &plan.servers[0];
        assert_eq!(s.processes.map(NonZeroU32::get), Some(4));
        let argv = s.command.as_ref().unwrap().expand(&|v| match v {
            Var::Port => "9000".into(),
            _ => "?".into(),
        });
        assert_eq!(argv, ["/bin/sh", "-c", "exec srv 9000"]);
        let c = &plan.clients[0];
        assert_eq!(c.processes.map(NonZeroU32::get), Some(2));
        assert_eq!(c.command.as_ref().unwrap().argv.len(), 5);
        assert_eq!(c.pacing.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.pacing.rate.map(NonZeroU32::get), Some(5000));
        assert_eq!(c.pacing.in_flight.map(NonZeroU32::get), Some(4096));
        assert_eq!(plan.run.settle, Some(Duration::from_secs(2)));
        assert_eq!(plan.run.timeout, Some(Duration::from_secs(300)));
        assert_eq!(plan.run.hold, Some(Hold::Forever));
        // The plan goes through the record and back.
        let back: crate::lab::Plan =
            serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(back.servers[0].command, plan.servers[0].command);
        assert_eq!(back.clients[0].pacing, plan.clients[0].pacing);
        assert_eq!(back.run, plan.run);

        let plan = ok(&lab("", "")).plan;
        assert!(plan.servers[0].command.is_none() && plan.clients[0].processes.is_none());
        assert_eq!(plan.clients[0].pacing, Pacing::default());
        assert_eq!(plan.run, RunSettings::default());
        let held = ok(&format!("{}[run]\nhold = \"30s\"\n", lab("", ""))).plan;
        assert_eq!(held.run.hold, Some(Hold::For(Duration::from_secs(30))));
    }

    #[test]
    fn placeholders_are_checked_where_they_are_written() {
        let d = reported(
            &lab("", "command = [\"c\", \"-n\", \"{conections}\"]"),
            "unknown placeholder `{conections}`",
            (18, 24),
        );
        assert!(d.help.unwrap().starts_with("did you mean {connections}?"));
        reported(
            &lab("command = [\"s\", \"{target}\"]", ""),
            "`{target}` has no value for a server",
            (13, 18),
        );
        reported(
            &lab("", "command = [\"{node}\"]"),
            "the program's name cannot have placeholders",
            (18, 12),
        );
        reported(&lab("", "command = []"), "`command` is empty", (18, 11));
    }

    #[test]
    fn an_absolute_program_must_exist() {
        reported(
            &lab("command = [\"/nonexistent/lab-test-server\"]", ""),
            "`/nonexistent/lab-test-server` does not exist",
            (13, 12),
        );
        reported(
            &lab("command = [\"/etc/passwd\"]", ""),
            "`/etc/passwd` is not an executable file",
            (13, 12),
        );
        // A name is looked up in PATH when it runs.
        ok(&lab("command = [\"my-server\"]", ""));
    }

    #[test]
    fn unprivileged_programs_get_low_ports_as_in_docker() {
        let sysctl = |list: &[Sysctl], key: &str| {
            list.iter()
                .find(|s| s.key() == key)
                .map(|s| s.value().to_owned())
        };
        let plan = ok(&lab("command = [\"srv\"]\nuser = \"nobody\"", "")).plan;
        let c = &plan.containers[0];
        assert_eq!(
            sysctl(&c.sysctls, "net.ipv4.ip_unprivileged_port_start").as_deref(),
            Some("0")
        );
        assert_eq!(
            sysctl(&c.sysctls, "net.ipv4.ping_group_range").as_deref(),
            Some("0 2147483647")
        );
        let host = &plan.hosts[0];
        assert_eq!(
            sysctl(&host.sysctls, "net.ipv4.ip_unprivileged_port_start").as_deref(),
            Some("0")
        );
        assert_eq!(plan.servers[0].user.as_deref(), Some("nobody"));
        // The built-in server's host keeps the kernel's default; the file's own value wins.
        let plan = ok(&lab("", "")).plan;
        assert_eq!(
            sysctl(
                &plan.hosts[0].sysctls,
                "net.ipv4.ip_unprivileged_port_start"
            ),
            None
        );
        reported(
            &lab("user = \"nobody\"", ""),
            "`user` applies to a `command` only",
            (13, 8),
        );
        reported(
            &lab("command = [\"srv\"]\nuser = \"no-such-user-lab\"", ""),
            "no user `no-such-user-lab` on this machine",
            (14, 8),
        );
    }

    #[test]
    fn bad_values_are_all_reported() {
        let text = format!(
            "{}[run]\nsettle = \"soon\"\ntimeout = \"0s\"\nhold = \"always\"\n",
            lab(
                "processes = 0",
                "processes = 5000\nconnect_timeout = \"0s\"\nrate = 0\nin_flight = -1"
            )
        );
        let d: Vec<_> = rejected(&text)
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
        for want in [
            "`processes = 0`: expected 1 to 1024",
            "`processes = 5000`: expected 1 to 1024",
            "`connect_timeout` cannot be zero",
            "`rate = 0`: expected 1 to",
            "`in_flight = -1`: expected 1 to",
            "invalid duration `soon`",
            "`timeout` cannot be zero",
            "invalid duration `always`",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(want)),
                "{want:?} not in {messages:#?}"
            );
        }
        assert_eq!(d.len(), 8, "{messages:#?}");
    }
}
