//! `lab show --docker` prints what Docker would take: for every lab in labs/, the commands
//! pass `bash -n`, the compose file parses as YAML (PyYAML, as docker compose's own tests
//! read it) with only the compose keys used here, and the `docker network create` lines and
//! the compose networks carry exactly each SNAT pool's addresses as host_ipv4. No Docker
//! engine is needed: nothing is run.

mod common;

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use lab::lab::plan::{Nat, Plan};
use lab::lab::{LoadOptions, Source, load};
use serde_json::Value;

fn plan_of(file: &Path) -> Plan {
    let text = std::fs::read_to_string(file).expect("lab file");
    load(
        &Source::new(file.display().to_string(), text),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|d| panic!("{}: {d:?}", file.display()))
    .plan
}

fn show(file: &Path, form: &str) -> String {
    let out = lab(&["show", &file.display().to_string(), "--docker", form]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every SNAT pool address of the lab's Docker hosts, in plan order.
fn pool_addresses(plan: &Plan) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for d in plan.hosts.iter().filter_map(|h| h.docker.as_ref()) {
        for n in d.all_networks() {
            if let Nat::Snat { pool, .. } = &n.nat {
                out.extend(pool);
            }
        }
    }
    out
}

/// Runs `script` with stdin `input` and returns stdout, or panics with stderr.
fn run_with_input(program: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[test]
fn the_docker_commands_are_shell_with_exactly_the_pools_addresses() {
    for file in lab_files() {
        let script = show(&file, "commands");
        let out = run_with_input("bash", &["-n"], &script);
        assert!(
            out.status.success(),
            "{}: bash -n refuses it: {}\n{script}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // One logical line per command: the continuations joined.
        let joined = script.replace("\\\n", " ");
        let creates: Vec<&str> = joined
            .lines()
            .filter(|l| l.starts_with("docker network create "))
            .collect();
        let host_ipv4: Vec<Ipv4Addr> = creates
            .iter()
            .flat_map(|l| l.split_whitespace())
            .filter_map(|w| w.strip_prefix("com.docker.network.host_ipv4="))
            .map(|a| a.parse().expect("an address"))
            .collect();
        let plan = plan_of(&file);
        assert_eq!(
            host_ipv4,
            pool_addresses(&plan),
            "{}: host_ipv4 values against the pools",
            file.display()
        );
        // Docker refuses --ip on the default bridge.
        for run in joined.lines().filter(|l| l.starts_with("docker run ")) {
            assert!(
                !(run.contains("--network bridge ") && run.contains(" --ip ")),
                "{}: {run}",
                file.display()
            );
        }
        let runs = joined
            .lines()
            .filter(|l| l.starts_with("docker run "))
            .count();
        assert_eq!(runs, plan.containers.len(), "{}", file.display());
    }
}

/// The compose keys `lab show --docker compose` may write, by where they sit: a subset of the
/// compose specification's (compose-spec/schema/compose-spec.json).
const TOP_KEYS: &[&str] = &["name", "networks", "services"];
const NETWORK_KEYS: &[&str] = &["name", "driver", "driver_opts", "ipam"];
const IPAM_KEYS: &[&str] = &["config"];
const IPAM_CONFIG_KEYS: &[&str] = &["subnet", "gateway"];
const SERVICE_KEYS: &[&str] = &[
    "image",
    "container_name",
    "networks",
    "network_mode",
    "sysctls",
    "environment",
    "command",
];
const SERVICE_NETWORK_KEYS: &[&str] = &["ipv4_address"];
/// The bridge driver's options (`driver_opts`) it uses.
const DRIVER_OPTS: &[&str] = &[
    "com.docker.network.bridge.name",
    "com.docker.network.host_ipv4",
    "com.docker.network.bridge.enable_ip_masquerade",
];

fn keys_within(v: &Value, allowed: &[&str], at: &str) {
    let map = v
        .as_object()
        .unwrap_or_else(|| panic!("{at} is not a mapping: {v}"));
    for k in map.keys() {
        assert!(allowed.contains(&k.as_str()), "{at}: unknown key `{k}`");
    }
}

fn strings_of(v: &Value, at: &str) {
    let map = v.as_object().unwrap_or_else(|| panic!("{at}: {v}"));
    for (k, x) in map {
        assert!(x.is_string(), "{at}.{k} is not a string: {x}");
    }
}

/// A compose file: only known keys, every value where compose wants a string a string, every
/// service on a network the file declares (or the default bridge).
fn check_compose(doc: &Value, at: &str) {
    keys_within(doc, TOP_KEYS, at);
    let empty = serde_json::Map::new();
    let networks = doc["networks"].as_object().unwrap_or(&empty);
    for (name, n) in networks {
        let at = format!("{at}: networks.{name}");
        keys_within(n, NETWORK_KEYS, &at);
        assert_eq!(n["driver"], "bridge", "{at}");
        keys_within(&n["driver_opts"], DRIVER_OPTS, &at);
        strings_of(&n["driver_opts"], &at);
        keys_within(&n["ipam"], IPAM_KEYS, &at);
        for c in n["ipam"]["config"].as_array().expect("ipam.config list") {
            keys_within(c, IPAM_CONFIG_KEYS, &at);
            strings_of(c, &at);
        }
    }
    let services = doc["services"].as_object().expect("services");
    for (name, s) in services {
        let at = format!("{at}: services.{name}");
        keys_within(s, SERVICE_KEYS, &at);
        assert!(s["image"].is_string(), "{at}");
        match (&s["network_mode"], s["networks"].as_object()) {
            (Value::String(mode), None) => assert_eq!(mode, "bridge", "{at}"),
            (Value::Null, Some(on)) => {
                for (net, how) in on {
                    assert!(networks.contains_key(net), "{at}: undeclared network {net}");
                    keys_within(how, SERVICE_NETWORK_KEYS, &at);
                }
            }
            other => panic!("{at}: network_mode or networks, not {other:?}"),
        }
        if let Some(sysctls) = s.get("sysctls") {
            strings_of(sysctls, &at);
        }
        if let Some(env) = s.get("environment") {
            strings_of(env, &at);
        }
        if let Some(cmd) = s.get("command") {
            let words = cmd.as_array().expect("command as a list");
            assert!(words.iter().all(Value::is_string), "{at}: {cmd}");
        }
    }
}

/// PyYAML reads every document of the stream; JSON out, for the checks above.
const YAML_TO_JSON: &str =
    "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))";

#[test]
fn the_compose_files_are_yaml_with_known_keys_and_the_pools_addresses() {
    let test = "the_compose_files_are_yaml_with_known_keys_and_the_pools_addresses";
    let probe = Command::new("python3").args(["-c", "import yaml"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip(
            test,
            "python3 with PyYAML is missing (Debian: python3-yaml)",
        );
        return;
    }
    for file in lab_files() {
        let yaml = show(&file, "compose");
        let out = run_with_input("python3", &["-c", YAML_TO_JSON], &yaml);
        assert!(
            out.status.success(),
            "{}: not YAML: {}\n{yaml}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let docs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON from python");
        let plan = plan_of(&file);
        let docker_hosts = plan.hosts.iter().filter(|h| h.docker.is_some()).count();
        assert_eq!(docs.len(), docker_hosts, "{}: one per host", file.display());
        let mut host_ipv4 = Vec::new();
        let mut services = 0;
        for doc in &docs {
            check_compose(doc, &file.display().to_string());
            for n in doc["networks"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                if let Some(a) = n["driver_opts"]["com.docker.network.host_ipv4"].as_str() {
                    host_ipv4.push(a.parse::<Ipv4Addr>().expect("an address"));
                }
            }
            services += doc["services"].as_object().map_or(0, |s| s.len());
        }
        assert_eq!(host_ipv4, pool_addresses(&plan), "{}", file.display());
        assert_eq!(services, plan.containers.len(), "{}", file.display());
    }
}

#[test]
fn docker_and_commands_are_one_or_the_other() {
    let file = lab_file("04-more-source-addresses.toml")
        .display()
        .to_string();
    let both = lab(&["show", &file, "--docker", "--commands"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    let neither = lab(&["show", &file]);
    assert_eq!(neither.status.code(), Some(2), "{}", text(&neither));
    let bad = lab(&["show", &file, "--docker", "swarm"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    // A bare --docker is the commands.
    let bare = lab(&["show", &file, "--docker"]);
    assert!(bare.status.success(), "{}", text(&bare));
    assert_eq!(
        String::from_utf8_lossy(&bare.stdout),
        show(Path::new(&file), "commands")
    );
}
