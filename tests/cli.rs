//! The command line as a tool people already know: `--help` with examples, completions,
//! `--json`, `NO_COLOR`, `-v`/`-q`, `lab schema` (checked against the loader), `lab new` and
//! `lab shell`. Most tests need no root; those that build a lab skip without it (fail under CI).

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::{CommandFactory as _, Parser as _};
use common::*;
use serde_json::Value;

/// A small lab: one LAN, a host with two containers behind Docker's NAT, a server host.
const SMALL: &str = r#"name = "small"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.server-host]
lan = "lan"
addresses = ["192.168.49.5"]
[containers.c]
host = "client-host"
replicas = 2
[servers.srv]
host = "server-host"
port = 9000
[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000"]
connections = 10
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh empty directory for this test.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lab-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

// ---- --help ----

#[test]
fn every_command_has_an_example_and_every_flag_a_help() {
    let cli = lab::cli::Cli::command();
    cli.clone().debug_assert();
    let mut verbs = Vec::new();
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        verbs.push(name.to_owned());
        let long = sub
            .get_long_about()
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(
            long.contains("Example: "),
            "`lab {name} --help` has no example"
        );
        assert!(sub.get_about().is_some(), "`lab {name}` has no summary");
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            assert!(
                arg.get_help().is_some() || arg.get_long_help().is_some(),
                "`lab {name}`: argument {} has no help",
                arg.get_id()
            );
        }
    }
    for verb in "completions list nat check".split(' ') {
        assert!(verbs.iter().any(|v| v == verb), "no `lab {verb}`");
    }
    // And what the binary prints.
    let top = lab(&["--help"]);
    assert!(top.status.success(), "{}", text(&top));
    assert!(
        stdout(&top).contains("Examples:\n  lab check"),
        "{}",
        text(&top)
    );
    assert!(stdout(&top).contains("-v, --verbose"), "{}", text(&top));
    for verb in &verbs {
        let out = lab(&[verb, "--help"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            stdout(&out).contains("Example: "),
            "lab {verb} --help:\n{}",
            text(&out)
        );
    }
}

#[test]
fn verbose_and_quiet_are_global_and_exclusive() {
    // `lab run` has its own -q (no live progress); the global one works before the verb.
    for args in [
        &["-q", "run", "x.toml"][..],
        &["run", "x.toml", "-q"],
        &["-vv", "list", "--json"],
        &["list", "-v"],
    ] {
        assert!(
            lab::cli::Cli::try_parse_from(std::iter::once("lab").chain(args.iter().copied()))
                .is_ok(),
            "{args:?}"
        );
    }
    let out = lab(&["-v", "-q", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

// ---- completions ----

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = lab(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = stdout(&out);
        assert!(
            script.contains("completions") && script.contains("check"),
            "{shell} script does not know the verbs"
        );
        assert!(out.stderr.is_empty(), "{shell}: {}", text(&out));
    }
    // bash can read its script.
    let out = lab(&["completions", "bash"]);
    let mut check = Command::new("bash")
        .args(["-n", "/dev/stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("feed bash");
    assert!(check.wait().expect("bash -n").success());
    let bad = lab(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

// ---- errors ----

#[test]
fn errors_show_their_causes_and_keep_their_exit_codes() {
    let dir = temp_dir("errors");
    let target = dir.join("missing-dir").join("lab.dot");
    let file = lab_file("07-small-ports.toml");
    let out = lab(&[
        "graph",
        file.to_str().expect("utf-8"),
        "--format",
        "dot",
        "-o",
        target.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let expected = format!(
        "lab: error: write {}: No such file or directory",
        target.display()
    );
    assert!(stderr(&out).contains(&expected), "{}", text(&out));

    let bad = temp_lab("cli-bad", "name = \"x\"\nnam = 1\n");
    let out = lab(&["check", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("lab: error: "), "{}", text(&out));
    let _ = std::fs::remove_dir_all(dir);
}

// ---- -v, NO_COLOR ----

#[test]
fn verbose_logs_go_to_stderr_and_quiet_keeps_them_out() {
    let file = lab_file("07-small-ports.toml");
    let file = file.to_str().expect("utf-8");
    let plain = lab(&["check", file]);
    assert!(plain.status.success(), "{}", text(&plain));
    assert!(!stderr(&plain).contains("INFO"), "{}", text(&plain));
    let verbose = lab(&["-v", "check", file]);
    assert!(verbose.status.success(), "{}", text(&verbose));
    assert!(
        stderr(&verbose).contains("INFO") && stderr(&verbose).contains("lab file is valid"),
        "{}",
        text(&verbose)
    );
    assert!(
        !stdout(&verbose).contains("lab file is valid"),
        "logs never go to stdout: {}",
        text(&verbose)
    );
    assert!(!stderr(&verbose).contains('\x1b'), "no colour into a pipe");
    let quiet = lab(&["-q", "check", file]);
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
}

/// Runs `lab ARGS` on a pseudo-terminal (util-linux `script`) and returns what it wrote.
fn on_a_terminal(args: &str, no_color: bool) -> Option<String> {
    let mut c = Command::new("script");
    c.args(["-qec", &format!("{LAB} {args}"), "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let file = lab_file("07-small-ports.toml");
    let args = format!("-v check {}", file.display());
    let Some(coloured) = on_a_terminal(&args, false) else {
        eprintln!("skipping: no `script` to make a terminal");
        return;
    };
    assert!(coloured.contains("lab file is valid"), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "a terminal gets colour:\n{coloured}"
    );
    let plain = on_a_terminal(&args, true).expect("script ran once already");
    assert!(plain.contains("lab file is valid"), "{plain}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR=1 still wrote escapes:\n{plain:?}"
    );
}

// ---- check --json ----

#[test]
fn check_json_is_one_document_with_numbers_as_numbers() {
    let file = lab_file("02-cross-host.toml");
    let out = lab(&["check", "--json", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("check --json");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["plan"]["name"], "cross-host");
    assert!(doc["diagnostics"].is_array());
    assert!(doc["prediction"].is_array());
    assert!(
        doc["capacity"]["connections"].is_u64(),
        "{:#}",
        doc["capacity"]
    );
    assert_eq!(doc["capacity"]["connections"], 75_000);

    let bad = temp_lab("cli-json-bad", "name = \"x\"\n[hosts.a]\nlan = \"nope\"\n");
    let out = lab(&["check", "--json", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("check --json of a bad file");
    assert_eq!(doc["ok"], false);
    let first = &doc["diagnostics"][0];
    assert!(
        first["line"].is_u64() && first["column"].is_u64(),
        "{doc:#}"
    );
    assert_eq!(first["severity"], "error");
}

// ---- with a lab up (root) ----

/// Brings up the small lab under a unique name; the guard takes it down, also on panic.
fn small_lab(tag: &str, extra: &[&str]) -> LabGuard {
    let name = unique_name(tag);
    let file = temp_lab(&format!("cli-{tag}"), SMALL);
    let mut args = extra.to_vec();
    args.extend(["up", file.to_str().expect("utf-8"), "--name", &name]);
    let out = lab(&args);
    let guard = LabGuard { name };
    assert!(out.status.success(), "lab up failed:\n{}", text(&out));
    guard
}

#[test]
fn list_and_nat_json_describe_a_running_lab() {
    if !root_or_skip("list_and_nat_json_describe_a_running_lab") {
        return;
    }
    let name = {
        let l = small_lab("json", &[]);
        let out = lab(&["list", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let labs: Value = serde_json::from_slice(&out.stdout).expect("list --json");
        let me = labs
            .as_array()
            .expect("an array of labs")
            .iter()
            .find(|x| x["lab"] == l.name.as_str())
            .unwrap_or_else(|| panic!("{} not listed: {labs:#}", l.name))
            .clone();
        assert_eq!(me["status"], "up");
        assert_eq!(me["state"], "up");
        assert_eq!(me["live"], true);
        assert!(me["created"].is_u64());
        assert_eq!(me["namespaces"].as_array().map(Vec::len), Some(5));
        let node = |n: &str| {
            me["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .find(|x| x["name"] == n)
                .unwrap_or_else(|| panic!("no node {n}: {me:#}"))
                .clone()
        };
        let lan = node("lan");
        assert_eq!(
            (lan["kind"].as_str(), lan["subnet"].as_str()),
            (Some("lan"), Some("192.168.49.0/24"))
        );
        let host = node("client-host");
        assert_eq!(host["kind"], "host");
        assert_eq!(host["netns"], l.ns("client-host"));
        assert_eq!(host["present"], true);
        assert_eq!(host["addresses"], serde_json::json!(["192.168.49.6"]));
        assert_eq!(host["docker"]["gateway"], "172.17.0.1");
        assert_eq!(host["docker"]["nat"], "masquerade");
        let c2 = node("c2");
        assert_eq!(c2["kind"], "container");
        assert_eq!(c2["netns"], l.ns("c2"));
        assert_eq!(c2["addresses"], serde_json::json!(["172.17.0.3"]));
        assert_eq!(
            (c2["host"].as_str(), c2["group"].as_str()),
            (Some("client-host"), Some("c"))
        );
        let srv = node("srv");
        assert_eq!(srv["kind"], "server");
        assert_eq!(srv["port"], 9000, "numbers are numbers");
        assert_eq!(srv["netns"], l.ns("server-host"));
        assert_eq!(me["clients"][0]["connections"], 10);

        let out = lab(&["nat", &l.name, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let views: Value = serde_json::from_slice(&out.stdout).expect("nat --json");
        let views = views.as_array().expect("one view per docker host");
        assert_eq!(views.len(), 1);
        assert_eq!(views[0]["host"], "client-host");
        assert!(
            views[0]["entries"].is_u64() && views[0]["paths"].is_array(),
            "{views:#?}"
        );
        l.name.clone()
    };
    assert_gone(&name);
}

#[test]
fn verbose_up_and_down_log_the_engine_steps() {
    if !root_or_skip("verbose_up_and_down_log_the_engine_steps") {
        return;
    }
    let name = {
        let l = small_lab("verbose", &["-vv"]);
        let out = lab(&["-v", "down", &l.name]);
        assert!(out.status.success(), "{}", text(&out));
        let log = stderr(&out);
        assert!(
            log.contains("INFO") && log.contains("tearing down"),
            "{log}"
        );
        assert!(!log.contains("DEBUG"), "-v is info only: {log}");
        l.name.clone()
    };
    assert_gone(&name);
    // The build, logged at -vv, again with a fresh name: every step of `up`.
    let name = unique_name("verbose2");
    let file = temp_lab("cli-verbose2", SMALL);
    let out = lab(&["-vv", "up", file.to_str().expect("utf-8"), "--name", &name]);
    let guard = LabGuard { name: name.clone() };
    assert!(out.status.success(), "{}", text(&out));
    let log = stderr(&out);
    for step in [
        "claimed the lab's name",
        "build lan lan",
        "build host client-host",
        "build container c1 on host client-host",
        "write Docker's nftables rules",
        "built",
    ] {
        assert!(log.contains(step), "no `{step}` in:\n{log}");
    }
    assert!(!log.contains('\x1b'), "no colour into a pipe");
    let quiet = lab(&["-q", "down", &name]);
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(!stderr(&quiet).contains("INFO"), "{}", text(&quiet));
    drop(guard);
    assert_gone(&name);
}
