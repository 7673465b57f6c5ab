//! `lab plan`: the written lab, run for real, establishes exactly what the plan predicts
//! (masquerade over two server addresses; an SNAT pool on two client hosts under a what-if
//! conntrack limit; each cloud NAT profile, GCP block by block); `lab check` of the written file
//! estimates what the plan says; bad requests
//! get exit 2 with what to do, and `--write` never overwrites.

mod common;

use std::path::Path;

use common::schema::{Kind, parse_valid};
use common::*;
use serde_json::Value;

/// Takes the lab down when dropped (a failed assertion included), whatever `lab run` left.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lab(&["down", "--force", &self.0]);
    }
}

/// `lab plan ARGS --json --write DIR/NAME.toml --name NAME`: the plan and the file.
fn plan_and_write(dir: &Path, name: &str, args: &[&str]) -> (Value, std::path::PathBuf) {
    let file = dir.join(format!("{name}.toml"));
    let mut all = vec!["plan", "--json", "--name", name, "--write"];
    let shown = file.to_str().expect("utf-8 path").to_string();
    all.push(&shown);
    all.extend_from_slice(args);
    let out = lab(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc = parse_valid(Kind::Plan, &String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        std::fs::read_to_string(&file).expect("written"),
        doc["lab_file"].as_str().expect("lab_file")
    );
    (doc, file)
}

/// Runs the written lab and checks it establishes exactly the plan's count, path by path.
fn run_exactly(tag: &str, args: &[&str]) -> (Value, Value) {
    let name = unique_name(tag);
    let dir = TempDir::new(tag);
    let (plan, file) = plan_and_write(&dir, &name, args);
    let _down = Down(name.clone());
    // `lab run` ends by itself: its own timeout bounds the run, generous for a loaded machine.
    let out = lab(&[
        "run",
        file.to_str().expect("utf-8"),
        "--name",
        &name,
        "--json",
        "--timeout",
        "240",
    ]);
    let run = Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, Some(0), "{}", run.text());
    let report = run.report();
    assert_eq!(report["established"], plan["connections"], "{}", run.text());
    assert_eq!(report["expectations_met"], true);
    assert_eq!(report["failed"]["timed_out"], 0);
    // The kernel's conntrack table, per NAT path (and a cloud VM's block), against the plan's
    // paths.
    let first = |p: &Value| p["vm_ports"]["first"].as_u64().unwrap_or(0);
    let mut seen: Vec<(String, String, u64, u64)> = Vec::new();
    for view in report["nat"].as_array().expect("nat views") {
        for p in view["paths"].as_array().expect("paths") {
            seen.push((
                p["translated"].as_str().unwrap_or_default().to_string(),
                p["dst"].as_str().unwrap_or_default().to_string(),
                first(p),
                p["ports_used"].as_u64().unwrap_or(0),
            ));
        }
    }
    let mut planned: Vec<(String, String, u64, u64)> = plan["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            (
                p["source"].as_str().unwrap_or_default().to_string(),
                p["server"].as_str().unwrap_or_default().to_string(),
                first(p),
                p["connections"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    seen.sort();
    planned.sort();
    assert_eq!(seen, planned, "{}", run.text());
    assert_gone(&name);
    (plan, report)
}

#[test]
fn seventy_thousand_over_two_server_addresses_establish_exactly() {
    if !root_or_skip("seventy_thousand_over_two_server_addresses_establish_exactly") {
        return;
    }
    let (plan, _) = run_exactly("plm", &["-n", "70000", "--server-addresses", "2"]);
    assert_eq!(plan["client_hosts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        plan["server"]["addresses"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_pool_on_two_client_hosts_establishes_exactly() {
    if !root_or_skip("a_pool_on_two_client_hosts_establishes_exactly") {
        return;
    }
    // As if a namespace could hold 100,000 conntrack entries: two client hosts of 65,000,
    // each with a pool of two addresses the hash splits its three containers 2:1 over.
    let (plan, _) = run_exactly(
        "plp",
        &[
            "-n",
            "130000",
            "--nat",
            "snat-pool",
            "--conntrack-max",
            "100000",
        ],
    );
    let hosts = plan["client_hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2);
    assert!(hosts.iter().all(|h| h["connections"] == 65_000));
    assert!(
        hosts
            .iter()
            .all(|h| h["addresses"].as_array().map(Vec::len) == Some(2))
    );
}

#[test]
fn a_gcp_plan_at_64_ports_per_vm_establishes_exactly_block_by_block() {
    if !root_or_skip("a_gcp_plan_at_64_ports_per_vm_establishes_exactly_block_by_block") {
        return;
    }
    // GCP's default block: 2,000 connections take 34 VMs of 58-59 (60 planned of 64), each
    // in its own block of one NAT IP; the kernel's table shows each block's count.
    let (plan, report) = run_exactly(
        "plg",
        &[
            "-n",
            "2000",
            "--nat",
            "gcp-cloud-nat",
            "--ports-per-vm",
            "64",
        ],
    );
    assert_eq!(plan["containers_per_host"], 34);
    assert_eq!(plan["cloud"]["ports_per_vm"], 64);
    assert_eq!(plan["paths"].as_array().map(Vec::len), Some(34));
    assert!(
        report["nat"][0]["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .all(|p| p["exhausted"] == false)
    );
}

#[test]
fn an_aws_gateway_and_an_azure_pool_establish_exactly() {
    if !root_or_skip("an_aws_gateway_and_an_azure_pool_establish_exactly") {
        return;
    }
    // Two gateway addresses taken in turn: 1,000 on each.
    let (plan, _) = run_exactly(
        "pla",
        &[
            "-n",
            "2000",
            "--nat",
            "aws-nat-gateway",
            "--source-addresses",
            "2",
        ],
    );
    let loads: Vec<&Value> = plan["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| &p["connections"])
        .collect();
    assert_eq!(loads, [1000, 1000]);
    // A pool of 4 VMs with 1,024 ports each (960 planned): 750 each.
    let (plan, _) = run_exactly("plz", &["-n", "3000", "--nat", "azure-lb-outbound"]);
    assert_eq!(plan["containers_per_host"], 4);
    assert_eq!(plan["cloud"]["ports_per_vm"], 1024);
}

/// What `lab check --json` of each written file estimates is the plan's capacity, and its
/// prediction is the plan's count (no root).
#[test]
fn lab_check_of_the_written_file_agrees_with_the_plan() {
    let dir = TempDir::new("plc");
    for (i, args) in [
        &["-n", "1000000"][..],
        &[
            "-n",
            "150000",
            "--nat",
            "snat-pool",
            "--server-addresses",
            "2",
        ],
        &["-n", "64512", "--containers-per-host", "1"],
        &["-n", "1000000", "--nat", "aws-nat-gateway"],
        &["-n", "1000000", "--nat", "gcp-cloud-nat"],
        &["-n", "200000", "--nat", "azure-lb-outbound"],
    ]
    .into_iter()
    .enumerate()
    {
        let (plan, file) = plan_and_write(&dir, &format!("plc{i}"), args);
        let out = lab(&["check", file.to_str().expect("utf-8"), "--json"]);
        let check = json_of(Kind::Check, &out);
        for key in [
            "connections",
            "open_files",
            "kernel_bytes",
            "conntrack_per_namespace",
            "conntrack_max",
        ] {
            assert_eq!(
                check["capacity"][key], plan["capacity"][key],
                "{args:?} {key}"
            );
        }
        let predicted: u64 = check["prediction"]
            .as_array()
            .expect("prediction")
            .iter()
            .map(|h| h["prediction"]["established"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(Some(predicted), plan["connections"].as_u64(), "{args:?}");
    }
}

#[test]
fn the_text_names_each_limit_and_bad_requests_say_what_to_do() {
    let out = lab(&["plan", "-n", "1000000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for name in [
        "nf_nat source ports 1024-65535",
        "net.ipv4.ip_local_port_range",
        "net.netfilter.nf_conntrack_max",
        "RLIMIT_NOFILE",
        "fs.file-max",
        "MemAvailable",
    ] {
        assert!(shown.contains(name), "{name} missing:\n{shown}");
    }
    let out = lab(&["plan", "-n", "10000", "--source-addresses", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--nat snat-pool"), "{}", text(&out));
    // Each cloud's limits, in the cloud's terms, with what to change.
    for (nat, names) in [
        (
            "aws-nat-gateway",
            [
                "AWS: 55,000 connections per NAT address per destination",
                "AWS: 8 addresses per NAT gateway",
                "associate more addresses with the NAT gateway",
            ],
        ),
        (
            "gcp-cloud-nat",
            [
                "GCP: min_ports_per_vm ports per VM per destination",
                "GCP: 64,512 ports per NAT IP",
                "raise min_ports_per_vm",
            ],
        ),
        (
            "azure-lb-outbound",
            [
                "Azure: SNAT ports per VM by backend pool size",
                "Azure: 64,000 SNAT ports per frontend IP",
                "add frontend IPs",
            ],
        ),
    ] {
        let out = lab(&["plan", "-n", "1000000", "--nat", nat]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let shown = String::from_utf8_lossy(&out.stdout);
        for name in names {
            assert!(shown.contains(name), "{nat}: {name} missing:\n{shown}");
        }
        assert!(!shown.contains("nf_nat source ports"), "{shown}");
    }
    let out = lab(&[
        "plan",
        "-n",
        "10000",
        "--nat",
        "aws-nat-gateway",
        "--source-addresses",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("at most 8 addresses"), "{}", text(&out));
    let out = lab(&[
        "plan",
        "-n",
        "10000",
        "--nat",
        "gcp-cloud-nat",
        "--ports-per-vm",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("power of two"), "{}", text(&out));

    let dir = TempDir::new("plw");
    let file = dir.join("kept.toml");
    std::fs::write(&file, "mine").expect("write");
    let out = lab(&[
        "plan",
        "-n",
        "100",
        "--write",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("never overwrites"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "mine");
}
