//! The JSON Schemas of the `--json` outputs (docs/schema/) against the real outputs: each
//! schema is a valid, closed, documented draft 2020-12 schema; `lab check --json` of every lab
//! file, and (as root) a real `lab run --json`, its report.json, and `lab list --json` and
//! `lab nat --json` of a running and of an up lab all validate; and a document with a field
//! missing, renamed or of the wrong type is rejected, with where it is wrong.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use common::schema::{Kind, assert_valid, errors, parse_valid};
use common::*;
use serde_json::{Value, json};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

// ---- the schemas themselves -------------------------------------------------------------

/// Each schema declares draft 2020-12, passes the draft's meta-schema, and compiles.
#[test]
fn every_schema_is_a_valid_draft_2020_12_schema_and_compiles() {
    for kind in Kind::ALL {
        let schema = kind.schema();
        let file = kind.path();
        assert_eq!(schema["$schema"], DRAFT, "{}", file.display());
        assert!(schema["title"].is_string(), "{}: no title", file.display());
        assert!(
            schema["description"].is_string(),
            "{}: no description",
            file.display()
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!(
                "{} is not a valid draft 2020-12 schema: {e} at {}",
                file.display(),
                e.instance_path()
            );
        }
        let _ = kind.validator();
    }
}

/// The shapes two outputs share (`nat_view` in `run` and `nat`, `host_prediction` in `run` and
/// `check`, `nat_rule` in `check` and `list`, ...) are the same text in every schema that has
/// them, so the schemas cannot drift apart; and every definition is used.
#[test]
fn shared_definitions_are_identical_and_every_definition_is_used() {
    let schemas: Vec<(Kind, Value)> = Kind::ALL.iter().map(|&k| (k, k.schema())).collect();
    let mut shared = BTreeSet::new();
    for (i, (a, sa)) in schemas.iter().enumerate() {
        let defs_a = sa["$defs"].as_object().expect("$defs");
        for (b, sb) in &schemas[i + 1..] {
            let defs_b = sb["$defs"].as_object().expect("$defs");
            for (name, def) in defs_a {
                if let Some(other) = defs_b.get(name) {
                    assert_eq!(
                        def,
                        other,
                        "$defs/{name} differs between {} and {}",
                        a.path().display(),
                        b.path().display()
                    );
                    shared.insert(name.clone());
                }
            }
        }
        let text = sa.to_string();
        for name in defs_a.keys() {
            assert!(
                text.contains(&format!("\"#/$defs/{name}\"")),
                "{}: $defs/{name} is never used",
                a.path().display()
            );
        }
    }
    for name in [
        "nat_view",
        "host_prediction",
        "nat_rule",
        "raised",
        "sysctl",
    ] {
        assert!(shared.contains(name), "$defs/{name} is in one schema only");
    }
}

/// Fields an output leaves out in some documents: `help` of a diagnostic without advice,
/// `signal` of a run not interrupted, and `plan`, `prediction`, `capacity`, `programs` of a
/// rejected file.
const OPTIONAL: &[&str] = &[
    "help",
    "signal",
    "plan",
    "prediction",
    "capacity",
    "programs",
];

/// Walks every subschema: each object schema with `properties` is closed
/// (`additionalProperties: false`, or discriminated by `allOf` of if/then on `kind`), and
/// requires every property but the few in [`OPTIONAL`].
fn assert_closed(schema: &Value, at: &str, problems: &mut Vec<String>) {
    match schema {
        Value::Object(o) => {
            let props = o.get("properties").and_then(Value::as_object);
            if let (Some(props), true) = (props, o.get("type") == Some(&json!("object"))) {
                if o.get("additionalProperties") != Some(&json!(false)) && !o.contains_key("allOf")
                {
                    problems.push(format!("{at}: not closed (additionalProperties: false)"));
                }
                let required: BTreeSet<&str> = o
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for name in props.keys() {
                    if !required.contains(name.as_str())
                        && !OPTIONAL.contains(&name.as_str())
                        && !o.contains_key("allOf")
                    {
                        problems.push(format!("{at}: `{name}` is not required"));
                    }
                }
            }
            for (k, v) in o {
                assert_closed(v, &format!("{at}/{k}"), problems);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                assert_closed(v, &format!("{at}/{i}"), problems);
            }
        }
        _ => {}
    }
}

/// Every object is closed and requires what is always there; every top-level field of each
/// output (of the report, of the check document, of a listed lab, of a NAT view) says what it
/// means.
#[test]
fn every_object_is_closed_and_every_top_level_field_is_described() {
    for kind in Kind::ALL {
        let schema = kind.schema();
        let mut problems = Vec::new();
        assert_closed(&schema, "#", &mut problems);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            kind.path().display(),
            problems.join("\n  ")
        );
        let top = match kind {
            Kind::Run | Kind::Check | Kind::Plan => &schema,
            Kind::List => &schema["$defs"]["lab"],
            Kind::Nat => &schema["$defs"]["nat_view"],
        };
        let props = top["properties"].as_object().expect("properties");
        assert!(props.len() >= 4, "{}", kind.path().display());
        for (name, p) in props {
            let described = p["description"].as_str().is_some_and(|d| d.len() > 10);
            assert!(
                described,
                "{}: top-level field `{name}` has no description",
                kind.path().display()
            );
        }
    }
}

// ---- lab check --------------------------------------------------------------------------

fn check_json(file: &Path) -> (Option<i32>, Value) {
    let out = lab(&["check", file.to_str().expect("utf-8 path"), "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "lab check --json printed no JSON ({e}):\n{}",
            common::text(&out)
        )
    });
    (out.status.code(), doc)
}

/// `lab check --json` (no root) of every lab in labs/ validates, and so do a file with a
/// warning (`ok: true` with a warning diagnostic), a file with a NAT none, an SNAT pool with
/// ports and `persistent`, and a rejected file (`ok: false`, exit 2, diagnostics only).
#[test]
fn lab_check_json_of_every_lab_file_validates() {
    let files = lab_files();
    assert!(files.len() >= 8, "{files:?}");
    for file in &files {
        let (code, doc) = check_json(file);
        assert_eq!(code, Some(0), "{}", file.display());
        assert_eq!(doc["ok"], true, "{}", file.display());
        assert_valid(Kind::Check, &doc);
    }

    let base = r#"name = "sc"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.a]
lan = "lan"
addresses = ["192.168.49.6", "192.168.49.7"]
[hosts.a.docker]
nat = NAT
[hosts.b]
lan = "lan"
addresses = ["192.168.49.5"]
[hosts.b.docker]
nat = "none"
subnet = "172.18.0.0/16"
[containers.c]
host = "a"
replicas = 2
[containers.d]
host = "b"
[servers.srv]
host = "b"
port = 9000
[clients.load]
containers = ["c", "d"]
connect = ["192.168.49.5:PORT"]
connections = 10
[expect]
established = { min = 1, max = 30 }
"#;
    let variant = |nat: &str, port: &str| base.replace("NAT", nat).replace("PORT", port);
    let cases = [
        (
            "snat",
            variant(
                r#"{ snat = ["192.168.49.6", "192.168.49.7"], ports = "20000-20009", persistent = true }"#,
                "9000",
            ),
            true,
        ),
        ("warning", variant(r#""masquerade""#, "9001"), true),
        (
            "rejected",
            variant(r#""masquerade""#, "9000").replace("connections = 10", "connections = 0"),
            false,
        ),
    ];
    for (tag, text, ok) in cases {
        let file = temp_lab(&format!("schk{tag}"), &text);
        let (code, doc) = check_json(&file);
        assert_eq!(doc["ok"], ok, "{tag}: {doc:#}");
        assert_eq!(code, Some(if ok { 0 } else { 2 }), "{tag}: {doc:#}");
        assert_valid(Kind::Check, &doc);
        match tag {
            "warning" => assert_eq!(doc["diagnostics"][0]["severity"], "warning", "{doc:#}"),
            "rejected" => assert!(doc.get("plan").is_none(), "{doc:#}"),
            _ => assert_eq!(
                doc["prediction"][0]["prediction"]["paths"][0]["capacity"],
                10
            ),
        }
    }
}

// ---- a real run, and lab list / lab nat during it ---------------------------------------

/// Two containers behind one masquerade with 30 source ports, 40 connections each to a server
/// address of their own: each path fills at 30 (60 established), the other 20 SYNs are dropped
/// and time out after one retry (~3 s). Small enough for seconds, and it fills every part of the
/// report: failures, exhausted paths, a translated port shared by two destinations, samples.
const TINY: &str = r#"name = "tiny"
description = "schema tests: two containers, 80 connections, 30 ports per NAT path"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.client-host.docker]
nat = { masquerade = true, ports = "40000-40029" }
[hosts.server-host]
lan = "lan"
addresses = ["192.168.49.5", "192.168.49.15"]
[containers.c]
host = "client-host"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }
[servers.srv]
host = "server-host"
port = 9000
[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000", "192.168.49.15:9000"]
connections = 40
ping_interval = "10s"
[expect]
established = 60
"#;

/// What one real `lab run --json` of [`TINY`] printed, with its report.json, and `lab list
/// --json` and `lab nat NAME --json` read while it was paused after settling.
struct RealRun {
    report: Value,
    report_file: Value,
    list: Value,
    nat: Value,
    name: String,
}

/// The run, made once per test process (tests needing it share it). Needs root.
fn real_run() -> &'static RealRun {
    static RUN: OnceLock<RealRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let name = unique_name("srun");
        let _guard = LabGuard { name: name.clone() };
        let file = temp_lab("srun", TINY);
        let out = TempDir::new("srun-out");
        let out_dir = out.join("out");
        let run = Running::start_env(
            &file,
            &name,
            &[
                "--json",
                "--quiet",
                "--out",
                out_dir.to_str().expect("utf-8"),
            ],
            None,
            &[("LAB_PAUSE_AT", "run:report")],
        );
        // Settled, the connections still held: the lab is `running`, with its agents.
        let paused = run.err.paused_at("run:report", Duration::from_secs(40));
        let listed = lab(&["list", "--json"]);
        let nat = lab(&["nat", &name, "--json"]);
        let done = run.wait(Duration::from_secs(60));
        assert!(
            paused,
            "the run never paused at run:report:\n{}",
            done.text()
        );
        assert_eq!(done.code, Some(0), "{}", done.text());
        assert!(listed.status.success(), "{}", text(&listed));
        assert!(nat.status.success(), "{}", text(&nat));
        assert_gone(&name);
        let report_file = serde_json::from_slice(
            &std::fs::read(out_dir.join("report.json")).expect("report.json"),
        )
        .expect("report.json is JSON");
        drop(out);
        RealRun {
            report: done.report(),
            report_file,
            list: serde_json::from_slice(&listed.stdout).expect("lab list --json is JSON"),
            nat: serde_json::from_slice(&nat.stdout).expect("lab nat --json is JSON"),
            name,
        }
    })
}

/// A real `lab run --json` validates, and so does its report.json; `lab list --json` and `lab
/// nat NAME --json` validate while it runs (owner pid, agents, exhausted paths).
#[test]
fn a_real_run_and_list_and_nat_during_it_validate() {
    if !root_or_skip("a_real_run_and_list_and_nat_during_it_validate") {
        return;
    }
    let r = real_run();
    assert_valid(Kind::Run, &r.report);
    assert_valid(Kind::Run, &r.report_file);
    assert_valid(Kind::List, &r.list);
    assert_valid(Kind::Nat, &r.nat);

    // What CI scripts read is there, with the numbers this lab must give.
    let report = &r.report;
    assert_eq!(report["established"], 60, "{report:#}");
    assert_eq!(report["failed"]["timed_out"], 20, "{report:#}");
    assert_eq!(report["expectations_met"], true, "{report:#}");
    assert_eq!(report["outcome"]["stop"]["reason"], "all_done");
    let me = r
        .list
        .as_array()
        .expect("an array")
        .iter()
        .find(|l| l["lab"] == r.name.as_str())
        .unwrap_or_else(|| panic!("lab {} is not listed: {:#}", r.name, r.list));
    assert_eq!(me["state"], "running", "{me:#}");
    assert!(me["owner_pid"].is_u64(), "{me:#}");
    assert!(
        !me["agents"].as_array().expect("agents").is_empty(),
        "{me:#}"
    );
    let paths = r.nat[0]["paths"].as_array().expect("paths");
    assert_eq!(paths.len(), 2, "{:#}", r.nat);
    assert!(paths.iter().all(|p| p["exhausted"] == true), "{:#}", r.nat);
}

/// `lab list --json` and `lab nat NAME [HOST] --json` of a lab left up (`lab up`), with a few
/// connections through its NAT (made inside the lab's namespaces), validate; a renamed node
/// field or an unknown node kind does not.
#[test]
fn list_and_nat_of_an_up_lab_validate() {
    if !root_or_skip("list_and_nat_of_an_up_lab_validate") {
        return;
    }
    let name = unique_name("sup");
    let file = temp_lab("sup", TINY);
    let guard = LabGuard::up(&file, &name);
    let acceptor = Acceptor::start(&guard.ns("server-host"), "0.0.0.0:9000");
    let (held, failed) = connect_many(
        &guard.ns("c1"),
        "192.168.49.5:9000",
        5,
        Duration::from_secs(5),
    );
    assert_eq!((held.len(), failed.len()), (5, 0), "{failed:?}");

    let out = lab(&["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = parse_valid(Kind::List, &String::from_utf8_lossy(&out.stdout));
    let me = list
        .as_array()
        .expect("an array")
        .iter()
        .find(|l| l["lab"] == name.as_str())
        .unwrap_or_else(|| panic!("lab {name} is not listed: {list:#}"))
        .clone();
    assert_eq!(me["state"], "up", "{me:#}");
    assert_eq!(me["owner_pid"], Value::Null, "{me:#}");

    for args in [
        vec!["nat", name.as_str(), "--json"],
        vec!["nat", name.as_str(), "server-host", "--json"],
    ] {
        let out = lab(&args);
        assert!(out.status.success(), "{}", text(&out));
        let nat = parse_valid(Kind::Nat, &String::from_utf8_lossy(&out.stdout));
        assert_eq!(nat.as_array().map(Vec::len), Some(1), "{nat:#}");
        if args.len() == 3 {
            assert_eq!(nat[0]["paths"][0]["ports_used"], 5, "{nat:#}");
        } else {
            assert_eq!(nat[0]["nat"], "none", "{nat:#}");
        }
    }
    drop(held);
    drop(acceptor);

    let one = json!([me]);
    assert_valid(Kind::List, &one);
    let mut renamed = one.clone();
    let node = renamed[0]["nodes"][1].as_object_mut().expect("a node");
    let present = node.remove("present").expect("present");
    node.insert("is_present".into(), present);
    assert_rejected(Kind::List, &renamed, "/0/nodes/1", "a renamed node field");
    let mut kind = one.clone();
    kind[0]["nodes"][0]["kind"] = json!("hub");
    assert_rejected(Kind::List, &kind, "/0/nodes/0/kind", "an unknown node kind");
    let mut state = one;
    state[0]["state"] = json!("gone");
    assert_rejected(Kind::List, &state, "/0/state", "an unknown state");

    drop(guard);
    let out = lab(&["list", "--json"]);
    let list = parse_valid(Kind::List, &String::from_utf8_lossy(&out.stdout));
    assert!(
        !list
            .as_array()
            .expect("an array")
            .iter()
            .any(|l| l["lab"] == name.as_str()),
        "{list:#}"
    );
    assert_gone(&name);
}

// ---- wrong documents are rejected -------------------------------------------------------

/// Asserts `doc` fails the schema of `kind` with an error at `path` (a JSON pointer), and
/// prints the errors (they are what a test sees when an output drifts from its schema).
fn assert_rejected(kind: Kind, doc: &Value, path: &str, what: &str) {
    let errors = errors(kind, doc);
    eprintln!("{what}:\n  {}", errors.join("\n  "));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("at {path}: "))),
        "{what}: expected an error at {path}, got {errors:#?}"
    );
}

/// The check document of labs/07 (no root), then each wrong version of it.
#[test]
fn wrong_check_documents_are_rejected() {
    let (_, good) = check_json(&lab_file("07-small-ports.toml"));
    assert_valid(Kind::Check, &good);

    let mut doc = good.clone();
    doc["plan"]["hosts"][0]
        .as_object_mut()
        .expect("host")
        .remove("addresses");
    assert_rejected(
        Kind::Check,
        &doc,
        "/plan/hosts/0",
        "a host without addresses",
    );

    let mut doc = good.clone();
    doc["ok"] = json!(false);
    assert_rejected(Kind::Check, &doc, "/plan", "a plan in a rejected document");

    let mut doc = good.clone();
    doc["capacity"]["connections"] = json!(-1);
    assert_rejected(
        Kind::Check,
        &doc,
        "/capacity/connections",
        "a negative count",
    );

    let mut doc = good.clone();
    doc["plan"]["servers"][0]["port"] = json!(70000);
    assert_rejected(
        Kind::Check,
        &doc,
        "/plan/servers/0/port",
        "a port out of range",
    );

    let mut doc = good.clone();
    doc["prediction"][0]["prediction"]["flows"][0]["limit"] = json!("ports");
    assert_rejected(
        Kind::Check,
        &doc,
        "/prediction/0/prediction/flows/0/limit",
        "an unknown limit",
    );

    let mut doc = good;
    doc["diagnostics"] = json!([{"severity": "error", "file": "x", "line": 1, "column": 1,
        "message": "m"}]);
    assert_rejected(
        Kind::Check,
        &doc,
        "/diagnostics/0/severity",
        "an error in an ok document",
    );
}

/// The real run report, then each wrong version of it: what a CI script reads missing,
/// renamed, negative or of another type, and the vocabularies.
#[test]
fn wrong_run_reports_are_rejected() {
    if !root_or_skip("wrong_run_reports_are_rejected") {
        return;
    }
    let good = &real_run().report;
    assert_valid(Kind::Run, good);

    let mut doc = good.clone();
    doc.as_object_mut().expect("report").remove("established");
    assert_rejected(Kind::Run, &doc, "/", "no `established`");

    let mut doc = good.clone();
    let failed = doc["failed"].as_object_mut().expect("failed");
    let n = failed.remove("timed_out").expect("timed_out");
    failed.insert("timedout".into(), n);
    assert_rejected(Kind::Run, &doc, "/failed", "`failed.timed_out` renamed");

    let mut doc = good.clone();
    doc["established"] = json!(-1);
    assert_rejected(Kind::Run, &doc, "/established", "a count of -1");

    let mut doc = good.clone();
    doc["failed"]["timed_out"] = json!("20");
    assert_rejected(Kind::Run, &doc, "/failed/timed_out", "a count as a string");

    let mut doc = good.clone();
    doc["outcome"]["last"]["clients"][0]["established"] = json!(1.5);
    assert_rejected(
        Kind::Run,
        &doc,
        "/outcome/last/clients/0/established",
        "a fractional count",
    );

    let mut doc = good.clone();
    doc["extra"] = json!(1);
    assert_rejected(Kind::Run, &doc, "/", "an unknown top-level field");

    let mut doc = good.clone();
    doc["expectations_met"] = json!("yes");
    assert_rejected(
        Kind::Run,
        &doc,
        "/expectations_met",
        "`expectations_met` a string",
    );

    let mut doc = good.clone();
    doc["outcome"]["stop"] = json!({"reason": "interrupted"});
    assert_rejected(
        Kind::Run,
        &doc,
        "/outcome/stop",
        "interrupted without its signal",
    );

    let mut doc = good.clone();
    doc["outcome"]["stop"] = json!({"reason": "stopped"});
    assert_rejected(
        Kind::Run,
        &doc,
        "/outcome/stop/reason",
        "an unknown stop reason",
    );

    let mut doc = good.clone();
    doc["nat"][0]["paths"][0]["dst"] = json!("192.168.49.5");
    assert_rejected(
        Kind::Run,
        &doc,
        "/nat/0/paths/0/dst",
        "a destination without its port",
    );

    let mut doc = good.clone();
    doc["raised"] = json!([{"limit": "fs.nr_open", "before": 1, "set": 2}]);
    assert_rejected(
        Kind::Run,
        &doc,
        "/raised/0/limit",
        "an unknown global limit",
    );

    // What the schema allows besides this run's values.
    for (met, stop) in [
        (Value::Null, json!({"reason": "interrupted", "signal": 15})),
        (json!(false), json!({"reason": "timeout"})),
        (json!(true), json!({"reason": "settled"})),
    ] {
        let mut doc = good.clone();
        doc["expectations_met"] = met;
        doc["outcome"]["stop"] = stop;
        assert_valid(Kind::Run, &doc);
    }
    let mut doc = good.clone();
    doc["raised"] = json!([{"limit": "net.netfilter.nf_conntrack_max", "before": 262144,
        "set": 304128}]);
    assert_valid(Kind::Run, &doc);
}

// ---- lab plan ---------------------------------------------------------------------------

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = lab(&all);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lab plan --json printed no JSON ({e})"))
}

/// `lab plan --json` (no root) validates for plans of one host and of several, masquerade and
/// pools, a widened port range, a what-if conntrack limit and each cloud NAT profile.
#[test]
fn lab_plan_json_validates() {
    for args in [
        &["-n", "64512"][..],
        &["-n", "1000000"],
        &["-n", "150000", "--nat", "snat-pool"],
        &[
            "-n",
            "130000",
            "--nat",
            "snat-pool",
            "--conntrack-max",
            "100000",
        ],
        &[
            "-n",
            "70000",
            "--containers-per-host",
            "1",
            "--port",
            "8080",
        ],
        &["-n", "1000000", "--nat", "aws-nat-gateway"],
        &[
            "-n",
            "2000",
            "--nat",
            "gcp-cloud-nat",
            "--ports-per-vm",
            "64",
        ],
        &["-n", "200000", "--nat", "azure-lb-outbound"],
    ] {
        let doc = plan_json(args);
        assert_valid(Kind::Plan, &doc);
    }
}

/// A plan document, then each wrong version of it.
#[test]
fn wrong_plan_documents_are_rejected() {
    let good = plan_json(&["-n", "150000", "--nat", "snat-pool"]);
    assert_valid(Kind::Plan, &good);

    let mut doc = good.clone();
    doc.as_object_mut().expect("plan").remove("lab_file");
    assert_rejected(Kind::Plan, &doc, "/", "a plan without its lab file");

    let mut doc = good.clone();
    doc["nat"] = json!("oci-nat-gateway");
    assert_rejected(
        Kind::Plan,
        &doc,
        "/nat",
        "a NAT the planner does not know yet",
    );

    let mut doc = good.clone();
    doc["limits"][0]["status"] = json!("tight");
    assert_rejected(Kind::Plan, &doc, "/limits/0/status", "an unknown status");

    let mut doc = good.clone();
    doc["paths"][0]["server"] = json!("192.168.49.5");
    assert_rejected(Kind::Plan, &doc, "/paths/0/server", "a server without port");

    let mut doc = good;
    doc["client_hosts"][0]["extra"] = json!(1);
    assert_rejected(Kind::Plan, &doc, "/client_hosts/0", "an unknown field");

    let good = plan_json(&["-n", "2000", "--nat", "gcp-cloud-nat"]);
    assert_valid(Kind::Plan, &good);
    let mut doc = good.clone();
    doc["cloud"]["profile"] = json!("gcp");
    assert_rejected(Kind::Plan, &doc, "/cloud", "an unknown cloud profile");
    let mut doc = good.clone();
    doc["cloud"]
        .as_object_mut()
        .expect("cloud")
        .remove("ports_per_vm");
    assert_rejected(
        Kind::Plan,
        &doc,
        "/cloud",
        "a cloud without its ports per VM",
    );
    let mut doc = good;
    doc["paths"][0]["vm_ports"]["first"] = json!(0);
    assert_rejected(Kind::Plan, &doc, "/paths/0/vm_ports", "a block from port 0");
}
