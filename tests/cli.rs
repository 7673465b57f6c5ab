//! The command line as a tool people already know: `--help` with examples, completions,
//! `--json`, `NO_COLOR`, `-v`/`-q`, `lab schema` (checked against the loader), `lab new` and
//! `lab shell`. Most tests need no root; those that build a lab skip without it (fail under CI).

mod common;

use std::io::Write as _;

use std::process::{Command, Stdio};

use clap::{CommandFactory as _, Parser as _};
use common::*;
use lab::lab::{LoadOptions, Source, load};
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

/// A fresh empty directory for this test, removed when dropped.
fn temp_dir(tag: &str) -> TempDir {
    TempDir::new(&format!("cli-{tag}"))
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
    for verb in "new shell schema completions list nat check".split(' ') {
        assert!(verbs.iter().any(|v| v == verb), "no `lab {verb}`");
    }
    // And what the binary prints.
    let top = lab(&["--help"]);
    assert!(top.status.success(), "{}", text(&top));
    assert!(
        stdout(&top).contains("Examples:\n  lab new my-lab"),
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
            script.contains("completions") && script.contains("shell"),
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
        skip(
            "colour_only_on_a_terminal_and_never_with_no_color",
            "no `script` (util-linux) to make a terminal",
        );
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
    let doc: Value = json_of(schema::Kind::Check, &out);
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
    let doc: Value = json_of(schema::Kind::Check, &out);
    assert_eq!(doc["ok"], false);
    let first = &doc["diagnostics"][0];
    assert!(
        first["line"].is_u64() && first["column"].is_u64(),
        "{doc:#}"
    );
    assert_eq!(first["severity"], "error");
}

/// A lab with programs: `lab check` shows what `lab run` starts where, process by process
/// with the command line filled in (the first 3 per group, then how many more), the built-in
/// agents in one line; `--json` lists every process in `programs`.
#[test]
fn check_shows_what_will_be_started_where() {
    let file = temp_lab(
        "cli-programs",
        r#"name = "progs"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.server-host]
lan = "lan"
addresses = ["192.168.49.5"]
[servers.srv]
host = "server-host"
port = 9000
command = ["bench-server", "-l", "0.0.0.0:{port}", "-id", "{process}/{processes}"]
processes = 2
[servers.plain]
host = "server-host"
port = 9001
[containers.c]
host = "client-host"
replicas = 3
[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000"]
connections = 25000
processes = 2
command = ["bench-client", "-rip", "{target_host}", "-n", "{connections}"]
[clients.builtin]
containers = ["c"]
connect = ["192.168.49.5:9001"]
connections = 10
"#,
    );
    // Not under sudo, whatever runs the suite: the programs will run as nobody.
    let out = lab_command()
        .args(["check", file.to_str().expect("utf-8")])
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .output()
        .expect("run lab check");
    assert!(out.status.success(), "{}", text(&out));
    let shown = stdout(&out);
    let expected = "\nprograms (what `lab run` starts where):\n\
        \x20 server srv runs as nobody (uid 65534):\n\
        \x20   server srv#0 on server-host: bench-server -l 0.0.0.0:9000 -id 0/2\n\
        \x20   server srv#1 on server-host: bench-server -l 0.0.0.0:9000 -id 1/2\n\
        \x20 server plain: built-in, on server-host\n\
        \x20 client load runs as nobody (uid 65534):\n\
        \x20   client load c1#0 in c1: bench-client -rip 192.168.49.5 -n 12500\n\
        \x20   client load c1#1 in c1: bench-client -rip 192.168.49.5 -n 12500\n\
        \x20   client load c2#0 in c2: bench-client -rip 192.168.49.5 -n 12500\n\
        \x20   ... and 3 more\n\
        \x20 client builtin: built-in, in c1, c2, c3\n";
    assert!(shown.contains(expected), "{shown}");

    let out = lab(&["check", "--json", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = json_of(schema::Kind::Check, &out);
    let programs = doc["programs"].as_array().expect("programs");
    assert_eq!(programs.len(), 2 + 3 * 2, "{programs:#?}");
    assert_eq!(
        programs[0],
        serde_json::json!({"role": "server", "name": "srv", "node": "server-host", "process": 0,
            "argv": ["bench-server", "-l", "0.0.0.0:9000", "-id", "0/2"]})
    );
    assert_eq!(
        programs[7],
        serde_json::json!({"role": "client", "name": "load", "node": "c3", "process": 1,
            "argv": ["bench-client", "-rip", "192.168.49.5", "-n", "12500"]})
    );
    // A lab of built-in agents only: no paragraph, an empty list.
    let plain = lab(&[
        "check",
        lab_file("02-cross-host.toml").to_str().expect("utf-8"),
    ]);
    assert!(!stdout(&plain).contains("programs ("), "{}", text(&plain));
    let plain = lab(&[
        "check",
        "--json",
        lab_file("02-cross-host.toml").to_str().expect("utf-8"),
    ]);
    assert_eq!(
        json_of(schema::Kind::Check, &plain)["programs"],
        serde_json::json!([])
    );
}

// ---- lab schema ----

use std::collections::{BTreeMap, BTreeSet};

const SCHEMA_FILE: &str = include_str!("../src/cli/lab.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA_FILE).expect("the schema is JSON")
}

/// A TOML document as JSON, the way editors validate TOML against a JSON Schema.
fn toml_to_json(text: &str) -> Value {
    let table: toml::Table = toml::from_str(text).expect("TOML");
    serde_json::to_value(table).expect("TOML as JSON")
}

fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    let doc = toml_to_json(text);
    validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn lab_schema_prints_the_schema() {
    let out = lab(&["schema"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), SCHEMA_FILE);
    let dir = temp_dir("schema");
    let path = dir.join("lab.schema.json");
    let out = lab(&["schema", "-o", path.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&path).expect("written"),
        SCHEMA_FILE
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("not a valid JSON Schema: {e}");
    }
}

#[test]
fn every_lab_file_validates_against_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("compile the schema");
    let mut files = lab_files();
    files.push(repo().join("src/lab/testdata/cross-host.toml"));
    assert!(files.len() > 5);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read lab file");
        load(
            &Source::new(file.display().to_string(), text.clone()),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|d| panic!("{} does not load: {d:?}", file.display()));
        let errors = schema_errors(&validator, &text);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
    // Forms of the lab file that labs/ does not use: bare dotted sysctls, nat tables, ranges.
    let more = format!(
        "{SMALL}[hosts.client-host.docker]\nnat = {{ snat = [\"192.168.49.6\"], ports = 2000, \
         persistent = true }}\n[containers.d]\nhost = \"client-host\"\naddress = \"172.17.0.9\"\n\
         sysctls = {{ net.ipv4.tcp_syn_retries = 1, \"net.core.somaxconn\" = \"100\" }}\n\
         [expect]\nestablished = {{ min = 1 }}\n"
    );
    load(
        &Source::new("more.toml", more.clone()),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|d| panic!("does not load: {d:?}"));
    assert_eq!(schema_errors(&validator, &more), Vec::<String>::new());
}

#[test]
fn the_schema_rejects_what_the_loader_rejects_by_shape() {
    let validator = jsonschema::validator_for(&schema()).expect("compile the schema");
    let cases = [
        (
            "an unknown key",
            format!("{SMALL}[lans.lan2]\nsubnet = \"10.0.0.0/24\"\nsubent = 1\n"),
        ),
        (
            "a wrong type",
            SMALL.replace("port = 9000", "port = \"9000\""),
        ),
        (
            "a port out of range",
            SMALL.replace("port = 9000", "port = 70000"),
        ),
        (
            "no required key",
            SMALL.replace("host = \"server-host\"\n", ""),
        ),
        (
            "an unknown nat mode",
            format!("{SMALL}[hosts.client-host.docker]\nnat = \"masq\"\n"),
        ),
        (
            "snat and masquerade together",
            format!(
                "{SMALL}[hosts.client-host.docker]\nnat = {{ snat = [\"192.168.49.6\"], \
                 masquerade = true }}\n"
            ),
        ),
        (
            "a global sysctl",
            SMALL.replace("replicas = 2", "sysctls = { \"fs.file-max\" = \"1\" }"),
        ),
        ("a bad duration", format!("{SMALL}ping_interval = \"10\"\n")),
        (
            "an unknown tcp_tables",
            format!("{SMALL}[machine]\ntcp_tables = \"own\"\n"),
        ),
    ];
    for (what, text) in cases {
        assert!(
            load(
                &Source::new("bad.toml", text.clone()),
                &LoadOptions::default()
            )
            .is_err(),
            "the loader accepts {what}"
        );
        assert!(
            !schema_errors(&validator, &text).is_empty(),
            "the schema accepts {what}:\n{text}"
        );
    }
}

/// The loader's known keys per table, read from its own "unknown key" diagnostics: one file
/// with an unknown key in every table, each answered with "expected one of: `a`, `b`".
fn loader_keys() -> BTreeMap<String, BTreeSet<String>> {
    const X: &str = "zqxj = 1";
    let text = format!(
        "name = \"k\"\n{X}\n\
         [lans.lan]\nsubnet = \"192.168.49.0/24\"\n{X}\n\
         [hosts.h]\nlan = \"lan\"\naddresses = [\"192.168.49.6\"]\n{X}\n\
         [hosts.h.docker]\n{X}\nnat = {{ masquerade = true, {X} }}\n\
         [hosts.h.docker.networks.n]\n{X}\n\
         [containers.c]\nhost = \"h\"\n{X}\n\
         [servers.s]\nhost = \"h\"\nport = 9000\n{X}\n\
         [clients.l]\ncontainers = [\"c\"]\nconnect = [\"192.168.49.6:9000\"]\nconnections = 1\n{X}\n\
         [expect]\nestablished = {{ min = 1, {X} }}\n{X}\n\
         [machine]\n{X}\n\
         [run]\n{X}\n"
    );
    let diags = load(&Source::new("keys.toml", text), &LoadOptions::default())
        .expect_err("unknown keys are errors");
    let mut keys = BTreeMap::new();
    for d in diags
        .iter()
        .filter(|d| d.message.starts_with("unknown key `zqxj`"))
    {
        let table = d
            .message
            .trim_start_matches("unknown key `zqxj` ")
            .to_owned();
        let help = d.help.as_deref().unwrap_or_default();
        let list = help.strip_prefix("expected one of: ").unwrap_or_else(|| {
            panic!("the loader answered `zqxj` {table} with {help:?}, not its list of keys")
        });
        let known = list
            .split(", ")
            .map(|k| k.trim_matches('`').to_owned())
            .collect();
        keys.insert(table, known);
    }
    keys
}

/// Follows `#/$defs/x` references.
fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local reference");
            resolve(schema, schema.pointer(pointer).expect("reference resolves"))
        }
        None => node,
    }
}

fn property_names(table: &Value) -> BTreeSet<String> {
    table["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_schema_has_exactly_the_keys_the_loader_accepts() {
    let schema = schema();
    let defs = &schema["$defs"];
    // Where each table the loader reads is described in the schema.
    let tables = [
        ("at the top level", &schema),
        ("in [lans.lan]", &defs["lan"]),
        ("in [hosts.h]", &defs["host"]),
        ("in [hosts.h.docker]", &defs["docker"]),
        ("in [hosts.h.docker.nat]", &defs["nat_table"]),
        ("in [hosts.h.docker.networks.n]", &defs["docker_network"]),
        ("in [containers.c]", &defs["container"]),
        ("in [servers.s]", &defs["server"]),
        ("in [clients.l]", &defs["client"]),
        ("in [expect]", &defs["expect"]),
        ("in [expect.established]", &defs["count_range"]),
        ("in [machine]", &defs["machine"]),
        ("in [run]", &defs["run"]),
    ];
    let loader = loader_keys();
    let loader_tables: BTreeSet<&str> = loader.keys().map(String::as_str).collect();
    let schema_tables: BTreeSet<&str> = tables.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        loader_tables, schema_tables,
        "tables the loader checks keys of"
    );
    for (table, def) in tables {
        assert_eq!(
            property_names(def),
            loader[table],
            "keys {table}: schema (left) vs loader (right)"
        );
        assert_eq!(
            def["additionalProperties"], false,
            "the schema must refuse unknown keys {table}, as the loader does"
        );
    }
    // The schema has no other closed table the comparison above would miss.
    let compared: Vec<&Value> = tables.iter().map(|(_, d)| *d).collect();
    for (name, def) in defs.as_object().expect("$defs") {
        if def["additionalProperties"] == false {
            assert!(
                compared.iter().any(|d| std::ptr::eq(*d, def)),
                "$defs/{name} is a table the loader comparison does not cover"
            );
        }
    }
    // The sections hold named tables of the right kind.
    for (section, def) in [
        ("lans", "lan"),
        ("hosts", "host"),
        ("containers", "container"),
        ("servers", "server"),
        ("clients", "client"),
    ] {
        let entry = &schema["properties"][section]["additionalProperties"];
        assert!(
            std::ptr::eq(resolve(&schema, entry), &defs[def]),
            "{section} entries are not $defs/{def}"
        );
    }
}

#[test]
fn the_schema_requires_what_the_loader_requires() {
    let text = "name = \"k\"\n[lans.lan]\n[hosts.h]\n[containers.c]\n[servers.s]\n[clients.l]\n";
    let diags = load(&Source::new("req.toml", text), &LoadOptions::default())
        .expect_err("missing keys are errors");
    let mut loader: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in &diags {
        if let Some(rest) = d.message.strip_prefix("missing required key `")
            && let Some((key, table)) = rest.split_once("` in ")
        {
            loader
                .entry(table.to_owned())
                .or_default()
                .insert(key.to_owned());
        }
    }
    let defs = &schema()["$defs"];
    for (table, def) in [
        ("[lans.lan]", "lan"),
        ("[hosts.h]", "host"),
        ("[containers.c]", "container"),
        ("[servers.s]", "server"),
        ("[clients.l]", "client"),
    ] {
        let required: BTreeSet<String> = defs[def]["required"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            required,
            loader.get(table).cloned().unwrap_or_default(),
            "required keys in {table}: schema (left) vs loader (right)"
        );
    }
}

// ---- lab new ----

use std::path::Path;

fn lab_in(dir: &Path, args: &[&str]) -> std::process::Output {
    lab_command()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run lab")
}

#[test]
fn lab_new_writes_a_commented_lab_that_checks_and_never_overwrites() {
    let dir = temp_dir("new");
    let out = lab_in(&dir, &["new", "my-lab"]);
    assert!(out.status.success(), "{}", text(&out));
    let file = dir.join("my-lab.toml");
    let written = std::fs::read_to_string(&file).expect("my-lab.toml written");
    // Commented: every section is explained, and the file says how to use it.
    let comments = written
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert!(comments >= 15, "only {comments} comment lines:\n{written}");
    for hint in [
        "lab check my-lab.toml",
        "sudo lab run my-lab.toml",
        "lab shell my-lab c1",
    ] {
        assert!(written.contains(hint), "no `{hint}` in:\n{written}");
    }
    let loaded = load(
        &Source::new("my-lab.toml", written.clone()),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|d| panic!("the starter does not load: {d:?}"));
    assert_eq!(loaded.plan.name.as_str(), "my-lab");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let validator = jsonschema::validator_for(&schema()).expect("compile the schema");
    assert_eq!(schema_errors(&validator, &written), Vec::<String>::new());
    let check = lab_in(&dir, &["check", "my-lab.toml"]);
    assert!(check.status.success(), "{}", text(&check));

    // Never over an existing file: exit 2, file unchanged.
    std::fs::write(&file, "mine").expect("overwrite for the test");
    let again = lab_in(&dir, &["new", "my-lab"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read_to_string(&file).expect("still there"), "mine");

    // -o PATH, and NAME.toml names the lab NAME.
    let out = lab_in(&dir, &["new", "other", "-o", "sub.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(dir.join("sub.toml"))
            .expect("sub.toml")
            .contains("name = \"other\"")
    );
    let out = lab_in(&dir, &["new", "third.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(dir.join("third.toml"))
            .expect("third.toml")
            .contains("name = \"third\"")
    );

    // A path ending in .toml: the lab is named after the file.
    std::fs::create_dir(dir.join("labs")).expect("mkdir labs");
    let out = lab_in(&dir, &["new", "labs/fourth.toml", "-q"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stderr(&out), "", "-q prints no status line");
    assert!(
        std::fs::read_to_string(dir.join("labs/fourth.toml"))
            .expect("labs/fourth.toml")
            .contains("name = \"fourth\"")
    );

    let bad = lab_in(&dir, &["new", "no/such"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let _ = std::fs::remove_dir_all(dir);
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
        let labs: Value = json_of(schema::Kind::List, &out);
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
        let views: Value = json_of(schema::Kind::Nat, &out);
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

/// `lab shell` with commands on its stdin instead of a person.
fn shell(lab_name: &str, node: &str, shell: Option<&str>, input: &str) -> std::process::Output {
    let mut c = lab_command();
    c.args(["shell", lab_name, node])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match shell {
        Some(s) => c.env("SHELL", s),
        None => c.env_remove("SHELL"),
    };
    let mut child = c.spawn().expect("start lab shell");
    let typed = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    // A shell refused at once (an unknown node) may exit before it reads: a broken pipe then is
    // its answer, not the test's failure.
    if let Err(e) = typed {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "type into the shell: {e}"
        );
    }
    child.wait_with_output().expect("lab shell")
}

#[test]
fn lab_shell_runs_a_shell_in_the_node_namespace() {
    if !root_or_skip("lab_shell_runs_a_shell_in_the_node_namespace") {
        return;
    }
    let name = {
        let l = small_lab("shell", &[]);
        let input = "echo \"node=$LAB_NODE lab=$LAB_NAME\"; ip -o -4 addr show dev eth0; exit\n";
        for sh in [
            Some("/bin/bash"),
            Some("/bin/sh"),
            None,
            Some("/no/such/shell"),
        ] {
            let out = shell(&l.name, "c2", sh, input);
            assert!(out.status.success(), "{sh:?}: {}", text(&out));
            let said = stdout(&out);
            assert!(
                said.contains(&format!("node=c2 lab={}", l.name)),
                "{sh:?}: {}",
                text(&out)
            );
            assert!(
                said.contains("inet 172.17.0.3/16"),
                "{sh:?} is not in c2: {}",
                text(&out)
            );
            // The prompt (on stderr, as shells write it) names the lab and the node.
            assert!(
                stderr(&out).contains(&format!("[lab {}:c2]", l.name)),
                "{sh:?}: no prompt: {}",
                text(&out)
            );
        }
        // A host: its LAN address, and the shell's exit status is lab shell's.
        let out = shell(
            &l.name,
            "server-host",
            Some("/bin/bash"),
            "ip -o -4 addr; exit 3\n",
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(stdout(&out).contains("192.168.49.5/24"), "{}", text(&out));
        let out = shell(&l.name, "nope", None, "exit\n");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(stderr(&out).contains("has no node nope"), "{}", text(&out));
        // lab exec sets the same variables.
        let out = lab(&[
            "exec",
            &l.name,
            "c1",
            "--",
            "sh",
            "-c",
            "echo $LAB_NAME/$LAB_NODE",
        ]);
        assert_eq!(
            stdout(&out).trim(),
            format!("{}/c1", l.name),
            "{}",
            text(&out)
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

/// `lab check FILE | head -1`: a verb that only prints ends quietly on the closed pipe, as Unix
/// tools do (killed by SIGPIPE, no panic message). The pipe's read end is closed before `lab`
/// starts, so its first write fails for certain.
#[test]
fn a_closed_pipe_ends_a_printing_verb_quietly() {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    use std::os::unix::process::ExitStatusExt as _;
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array we own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("check")
        .arg(lab_file("05-both-fixes.toml"))
        .stdout(std::process::Stdio::from(write))
        .output()
        .expect("run lab check");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// A building verb whose reader goes away is different: `lab run FILE 2>&1 | head -3` must
/// still run, tear down and leave nothing (a panic on the first failed write used to kill it
/// mid-run and leave the lab behind). Both stdout and stderr are pipes whose read ends are
/// closed before `lab` starts.
#[test]
fn a_closed_pipe_never_leaves_a_running_lab_behind() {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    if !root_or_skip("a_closed_pipe_never_leaves_a_running_lab_behind") {
        return;
    }
    let pipe = || {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two new descriptors into the array we own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned here alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        write
    };
    let file = temp_lab("clpipe", SMALL);
    for json in [false, true] {
        let name = unique_name(&format!("clp{}", u8::from(json)));
        let _guard = LabGuard { name: name.clone() };
        let mut cmd = lab_command();
        cmd.arg("run")
            .arg(&*file)
            .args(["--name", &name, "--timeout", "30"]);
        if json {
            cmd.arg("--json");
        }
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(pipe()))
            .stderr(Stdio::from(pipe()))
            .status()
            .expect("run lab run");
        assert_eq!(status.code(), Some(0), "json {json}: {status:?}");
        assert_gone(&name);
    }
}

/// Bad values on `lab run`'s command line: a usage error (exit 2) naming the flag, before
/// anything is built.
#[test]
fn bad_run_values_are_usage_errors_and_build_nothing() {
    let file = lab_file("07-small-ports.toml");
    let file = file.to_str().expect("utf-8");
    let name = unique_name("badval");
    for (args, says) in [
        (vec!["--settle=-1"], "--settle"),
        (vec!["--settle", "-1"], "-1"),
        (vec!["--timeout", "nan"], "--timeout"),
        (vec!["--timeout", "inf"], "--timeout"),
        (vec!["--timeout", "0"], "--timeout"),
        (vec!["--connect-timeout", "3x"], "--connect-timeout"),
        (vec!["--rate", "0"], "--rate"),
        (vec!["--rate", "-5"], "-5"),
        (vec!["--in-flight", "0"], "--in-flight"),
        (vec!["--in-flight", "4294967296"], "--in-flight"),
        (vec!["--hold", "always"], "--hold"),
    ] {
        let mut all = vec!["run", file, "--name", &name];
        all.extend(&args);
        let out = lab(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?} names {says}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        assert!(namespaces_with_prefix(&format!("{name}-")).is_empty());
    }
    // A name too long for `<name>-<node>` namespace names (no interface name contains it:
    // veths are hashed, as Docker names them): the loader's error, for every verb that loads.
    let long = "a".repeat(64);
    for verb in [&["run"][..], &["up"], &["check"], &["show", "--commands"]] {
        let mut args = verb.to_vec();
        args.extend([file, "--name", &long]);
        let out = lab(&args);
        assert_eq!(out.status.code(), Some(2), "{verb:?}: {}", text(&out));
        assert!(stderr(&out).contains("--name"), "{verb:?}: {}", text(&out));
        assert!(namespaces_with_prefix(&format!("{long}-")).is_empty());
        assert!(!std::path::Path::new(RUN_DIR).join(&long).exists());
    }
}
