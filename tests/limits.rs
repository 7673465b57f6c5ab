//! Global limits (root, real labs): a lab whose workload needs more than the machine's
//! `net.netfilter.nf_conntrack_max` is refused unless its file allows the raise; allowed, the
//! raise is printed, holds while the lab lives and is restored however the lab ends (report,
//! Ctrl-C, `kill -9` then `lab down` or `lab clean`), also when two labs hold it at once.
//!
//! These tests change a global sysctl on purpose, so they live in a test binary of their own
//! (cargo runs test binaries one after another: no other suite's host snapshot sees the raise)
//! and take one lock, so they never overlap each other.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const KEY: &str = "net.netfilter.nf_conntrack_max";
const CONTAINERS: u64 = 6;
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What every test here starts with: root (or a skip), the machine's global limits to itself
/// (each test here raises one; also the tests of other binaries wait), and the initial
/// namespace as it was, to compare with at the end.
fn begin(test: &str) -> Option<(HostLock, HostSnapshot)> {
    if !root_or_skip(test) {
        return None;
    }
    let one = HostLock::exclusive();
    Some((one, host_snapshot()))
}

fn assert_host_unchanged(before: &HostSnapshot) {
    assert_eq!(*before, host_snapshot(), "the initial namespace changed");
}

fn conntrack_max() -> u64 {
    std::fs::read_to_string(LIMIT)
        .expect("read nf_conntrack_max")
        .trim()
        .parse()
        .expect("a number")
}

/// Connections per container so that one host's six containers need `extra` conntrack entries
/// more than the machine allows a namespace.
fn per_container(extra: u64) -> u64 {
    (conntrack_max() + extra).div_ceil(CONTAINERS)
}

/// One client host with six containers, each to its own server address (one NAT path each, far
/// below 64,512 ports), `per` connections per container; `machine` is the `[machine]` table.
fn crowded_lab(tag: &str, per: u64, machine: &str) -> TempLab {
    let servers: Vec<String> = (0..CONTAINERS)
        .map(|i| format!("\"192.168.49.{}\"", 5 + 10 * i))
        .collect();
    let targets: Vec<String> = (0..CONTAINERS)
        .map(|i| format!("\"192.168.49.{}:9000\"", 5 + 10 * i))
        .collect();
    let text = format!(
        r#"name = "crowded"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.200"]
[containers.c]
host = "client-host"
replicas = {CONTAINERS}
sysctls = {{ "net.ipv4.ip_local_port_range" = "1024 65535" }}
[hosts.server-host]
lan = "lan"
addresses = [{servers}]
[servers.srv]
host = "server-host"
port = 9000
[clients.load]
containers = ["c"]
connect = [{targets}]
connections = {per}
{machine}
[expect]
established = {total}
"#,
        servers = servers.join(", "),
        targets = targets.join(", "),
        total = per * CONTAINERS,
    );
    temp_lab(tag, &text)
}

const ALLOW: &str = "[machine]\nraise = [\"net.netfilter.nf_conntrack_max\"]";

/// Starts `lab run` paused at `point`; returns it once it is there, having checked that the
/// limit was raised, and the value it was raised to.
fn paused_after_raise(file: &std::path::Path, name: &str, point: &str) -> (Running, u64) {
    let before = conntrack_max();
    let run = Running::start_env(
        file,
        name,
        &["--json", "--quiet"],
        None,
        &[("LAB_PAUSE_AT", point)],
    );
    assert!(
        run.err.paused_at(point, RUN_LIMIT),
        "never paused at {point}"
    );
    let now = conntrack_max();
    assert!(now > before, "{KEY} is still {now}: not raised");
    (run, now)
}

#[test]
fn without_machine_raise_a_crowded_lab_is_refused_and_nothing_changes() {
    let Some((_one, before)) =
        begin("without_machine_raise_a_crowded_lab_is_refused_and_nothing_changes")
    else {
        return;
    };
    let name = unique_name("limno");
    let file = crowded_lab("limno", per_container(1000), "");
    let run = Running::start(&file, &name, &[], None).wait(RUN_LIMIT);
    assert_eq!(run.code, Some(3), "{}", run.text());
    let max = conntrack_max();
    for part in [
        format!("more than {KEY} = {max} allows a namespace"),
        format!("`raise = [\"{KEY}\"]`"),
        "spread the containers over more hosts".to_owned(),
    ] {
        assert!(
            run.stderr.contains(&part),
            "no {part:?} in:\n{}",
            run.text()
        );
    }
    // `lab check` shows the same problem before anything is run.
    let out = lab(&["check", file.to_str().expect("utf-8")]);
    assert!(
        text(&out).contains(&format!("more than {KEY} = {max}")),
        "{}",
        text(&out)
    );
    assert_gone(&name);
    assert_host_unchanged(&before);
}

#[test]
fn a_signal_after_the_raise_restores_the_limit() {
    let Some((_one, before_snapshot)) = begin("a_signal_after_the_raise_restores_the_limit") else {
        return;
    };
    let before = conntrack_max();
    for (i, (point, sig)) in [("up:limits", libc::SIGINT), ("up:namespace", libc::SIGTERM)]
        .into_iter()
        .enumerate()
    {
        let tag = format!("limsig{i}");
        let name = unique_name(&tag);
        let _guard = LabGuard { name: name.clone() };
        let per = per_container(1000);
        let file = crowded_lab(&tag, per, ALLOW);
        let (run, raised) = paused_after_raise(&file, &name, point);
        assert!(raised >= per * CONTAINERS, "raised to {raised} only");
        // SAFETY: our own child, by pid.
        unsafe { libc::kill(run.pid() as i32, sig) };
        let run = run.wait(RUN_LIMIT);
        assert_eq!(run.code, Some(128 + sig), "{}", run.text());
        for line in [
            format!("lab: raised {KEY} from {before} to {raised} for lab {name}"),
            format!("lab: restored {KEY} to {before} (lab {name} had raised it to {raised})"),
        ] {
            assert!(
                run.stderr.contains(&line),
                "no {line:?} in:\n{}",
                run.text()
            );
        }
        assert_eq!(conntrack_max(), before, "{point}: not restored");
        assert_gone(&name);
    }
    assert_host_unchanged(&before_snapshot);
}

#[test]
fn after_kill_9_down_or_clean_restores_the_limit_and_two_labs_share_it() {
    let Some((_one, before_snapshot)) =
        begin("after_kill_9_down_or_clean_restores_the_limit_and_two_labs_share_it")
    else {
        return;
    };
    let before = conntrack_max();
    // Two labs, the second needing more: each killed right after its raise.
    let (a, b) = (unique_name("limka"), unique_name("limkb"));
    let _guards = (LabGuard { name: a.clone() }, LabGuard { name: b.clone() });
    let killed_after_raise = |name: &str, extra: u64| {
        let file = crowded_lab(name, per_container(extra), ALLOW);
        let (mut run, raised) = paused_after_raise(&file, name, "up:limits");
        run.child.kill().expect("kill -9 lab run");
        let _ = run.child.wait();
        raised
    };
    let raised_a = killed_after_raise(&a, 1000);
    let raised_b = killed_after_raise(&b, 80_000);
    assert!(raised_b > raised_a);
    assert_eq!(conntrack_max(), raised_b);
    // `lab list` says what each left-behind lab holds.
    let out = lab(&["list", "--json"]);
    let labs: serde_json::Value = json_of(schema::Kind::List, &out);
    let held = |name: &str| {
        labs.as_array()
            .and_then(|l| l.iter().find(|l| l["lab"] == name))
            .map(|l| l["raised"][0]["set"].clone())
    };
    assert_eq!(held(&a), Some(serde_json::json!(raised_a)), "{labs}");
    assert_eq!(held(&b), Some(serde_json::json!(raised_b)), "{labs}");

    // A goes first: B still relies on its raise, which stays.
    let out = lab(&["down", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(conntrack_max(), raised_b, "A's teardown lowered B's limit");
    // B, the last holder, is removed by `lab clean` (its owner is dead): the machine's value.
    let out = lab(&["clean"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("lab: restored {KEY} to {before}")),
        "{}",
        text(&out)
    );
    assert_eq!(conntrack_max(), before, "not restored");
    assert_gone(&a);
    assert_gone(&b);
    assert_host_unchanged(&before_snapshot);
}

/// The conntrack hash every namespace shares is sized to the lab's connections only where the
/// file allows it, and given back like the others: here the crowded lab, stopped right after
/// its raises.
#[test]
fn conntrack_buckets_are_raised_when_allowed_and_restored() {
    let Some((_one, before_snapshot)) =
        begin("conntrack_buckets_are_raised_when_allowed_and_restored")
    else {
        return;
    };
    const BUCKETS: &str = "/proc/sys/net/netfilter/nf_conntrack_buckets";
    let buckets = || -> u64 {
        std::fs::read_to_string(BUCKETS)
            .expect("read nf_conntrack_buckets")
            .trim()
            .parse()
            .expect("a number")
    };
    let before = buckets();
    let per = per_container(1000);
    let total = per * CONTAINERS;
    let name = unique_name("limbk");
    let _guard = LabGuard { name: name.clone() };
    let allow = "[machine]\nraise = [\"net.netfilter.nf_conntrack_max\", \
                 \"net.netfilter.nf_conntrack_buckets\"]";
    let file = crowded_lab("limbk", per, allow);
    let (run, _) = paused_after_raise(&file, &name, "up:limits");
    let raised = buckets();
    if total > before {
        assert_eq!(
            raised,
            (2 * total).next_power_of_two(),
            "buckets for {total} connections"
        );
    } else {
        assert_eq!(raised, before, "a machine with enough buckets keeps them");
    }
    // SAFETY: our own child, by pid.
    unsafe { libc::kill(run.pid() as i32, libc::SIGINT) };
    let run = run.wait(RUN_LIMIT);
    assert_eq!(run.code, Some(128 + libc::SIGINT), "{}", run.text());
    if raised > before {
        let line = format!(
            "lab: restored net.netfilter.nf_conntrack_buckets to {before} (lab {name} had raised it to {raised})"
        );
        assert!(
            run.stderr.contains(&line),
            "no {line:?} in:\n{}",
            run.text()
        );
    }
    assert_eq!(buckets(), before, "not restored");
    assert_gone(&name);
    assert_host_unchanged(&before_snapshot);
}

/// The real thing: one host whose NAT holds more connections than nf_conntrack_max allows a
/// namespace. With the raise every connection is established; after the run the limit is back.
#[test]
fn with_the_raise_every_connection_of_a_crowded_host_is_established() {
    let Some((_one, before_snapshot)) =
        begin("with_the_raise_every_connection_of_a_crowded_host_is_established")
    else {
        return;
    };
    let before = conntrack_max();
    let per = per_container(8192);
    if per > 60_000 {
        skip(
            "with_the_raise_every_connection_of_a_crowded_host_is_established",
            &format!(
                "nf_conntrack_max is {before}: outgrowing it would take {per} connections per \
                 NAT path, more than one path holds"
            ),
        );
        return;
    }
    let name = unique_name("limrun");
    let _guard = LabGuard { name: name.clone() };
    let file = crowded_lab("limrun", per, ALLOW);
    let run = Running::start(&file, &name, &["--json", "--quiet"], None).wait(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let report = run.report();
    assert_eq!(report["established"], serde_json::json!(per * CONTAINERS));
    let raised = &report["raised"];
    assert_eq!(raised.as_array().map(Vec::len), Some(1), "{raised}");
    assert_eq!(raised[0]["limit"], serde_json::json!(KEY));
    assert_eq!(raised[0]["before"], serde_json::json!(before));
    assert!(
        raised[0]["set"].as_u64() >= Some(per * CONTAINERS),
        "{raised}"
    );
    assert!(per * CONTAINERS > before, "the lab must outgrow the limit");
    assert!(
        run.stderr
            .contains(&format!("lab: raised {KEY} from {before} to "))
    );
    assert!(
        run.stderr
            .contains(&format!("lab: restored {KEY} to {before} "))
    );
    assert_eq!(conntrack_max(), before, "not restored");
    assert_gone(&name);
    assert_host_unchanged(&before_snapshot);
}

/// A network namespace of this test's own (what a container has), removed on drop.
struct OtherNetns(String);

impl OtherNetns {
    fn new(tag: &str) -> Self {
        let name = format!("lab-test-{tag}-{}", std::process::id());
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "{}", text(&out));
        Self(name)
    }
}

impl Drop for OtherNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Run from a network namespace other than the host's, as in a container: nf_conntrack_max is
/// read-only there even to root, so a lab that needs it raised is refused up front (exit 3),
/// saying where it can be raised, even though its file allows the raise.
#[test]
fn outside_the_hosts_namespace_the_raise_is_refused_up_front() {
    let Some((_one, before)) = begin("outside_the_hosts_namespace_the_raise_is_refused_up_front")
    else {
        return;
    };
    let other = OtherNetns::new("ctns");
    let name = unique_name("limct");
    let file = crowded_lab("limct", per_container(1000), ALLOW);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &other.0, LAB, "run"])
        .arg(&file)
        .args(["--name", &name])
        .env("LAB_RUN_DIR", RUN_DIR)
        .output()
        .expect("run lab in another namespace");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "cannot be changed here",
        "only the host's initial network namespace can change it",
        "`sysctl -w net.netfilter.nf_conntrack_max=",
    ] {
        assert!(err.contains(part), "no {part:?} in:\n{}", text(&out));
    }
    assert_gone(&name);
    drop(other);
    assert_host_unchanged(&before);
}

/// `lab up` is for the same load as `lab run` (the user's own tools may drive it through `lab
/// exec`): it makes the raises the file allows, says so, and `lab down` restores them; a lab
/// that may not raise is built all the same, with the warning of what `lab run` would refuse.
#[test]
fn lab_up_makes_the_raises_the_file_allows_and_down_restores_them() {
    let Some((_one, before_snapshot)) =
        begin("lab_up_makes_the_raises_the_file_allows_and_down_restores_them")
    else {
        return;
    };
    let before = conntrack_max();
    let per = per_container(1000);
    let file = crowded_lab("limup", per, ALLOW);
    let name = unique_name("limup");
    {
        let _guard = LabGuard { name: name.clone() };
        let up = lab(&["up", file.to_str().expect("utf-8"), "--name", &name]);
        assert!(up.status.success(), "{}", text(&up));
        let raised = conntrack_max();
        assert!(raised > before, "{KEY} is still {raised}: not raised");
        assert!(
            String::from_utf8_lossy(&up.stderr)
                .contains(&format!("lab: raised {KEY} from {before} to {raised}")),
            "{}",
            text(&up)
        );
        let down = lab(&["down", &name]);
        assert!(down.status.success(), "{}", text(&down));
        assert_eq!(conntrack_max(), before, "not restored by lab down");
    }
    assert_gone(&name);

    let file = crowded_lab("limupno", per, "");
    let name = unique_name("limupno");
    {
        let _guard = LabGuard { name: name.clone() };
        let up = lab(&["up", file.to_str().expect("utf-8"), "--name", &name]);
        assert!(up.status.success(), "{}", text(&up));
        assert!(
            String::from_utf8_lossy(&up.stderr)
                .contains("lab: warning: `lab run` would refuse this lab: one host will need"),
            "{}",
            text(&up)
        );
        assert_eq!(conntrack_max(), before, "raised without the file's leave");
    }
    assert_gone(&name);
    assert_host_unchanged(&before_snapshot);
}
