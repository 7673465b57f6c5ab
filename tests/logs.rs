//! `lab logs` and the programs' logs of `lab run --out`, against real runs (root): a server
//! that is the user's own program (a Python one-liner that says hello and listens), the
//! built-in client, the logs read while the run holds, per node and tailed, and copied into
//! `--out DIR/logs/` before teardown; every run leaves nothing behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A server host running the user's program as its server, a client host whose two containers
/// run the built-in client, and `extra` (e.g. `[run]`).
fn program_lab(tag: &str, extra: &str) -> TempLab {
    temp_lab(
        tag,
        &format!(
            r#"name = "lg"
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
command = ["/usr/bin/python3", "-c", "import socket,sys,time; print('hello from', sys.argv[1], flush=True); print('second line', flush=True); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', int(sys.argv[2]))); s.listen(); time.sleep(120)", "{{node}}", "{{port}}"]
[containers.c]
host = "client-host"
replicas = 2
[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000"]
connections = 3
[run]
settle = "1s"
{extra}
"#
        ),
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// While a run holds: `lab logs NAME` prints the server program's log under its header, as
/// does `lab logs NAME server-host`; a container of built-in clients has none; an unknown node
/// is a usage error; `--tail 1` keeps the last line. After Ctrl-C the lab is gone and `lab
/// logs` says so as `lab nat` does.
#[test]
fn lab_logs_prints_a_held_runs_program_logs() {
    if !root_or_skip("lab_logs_prints_a_held_runs_program_logs") {
        return;
    }
    let before = host_snapshot();
    let name = unique_name("logs");
    let _guard = LabGuard { name: name.clone() };
    let file = program_lab("logs", "hold = \"forever\"");
    let run = Running::until_hold(&file, &name, &["--quiet"]);
    let header = format!("==> {RUN_DIR}/{name}/logs/server@srv#0.log <==\n");
    let whole = format!("{header}hello from server-host\nsecond line\n");
    let all = lab(&["logs", &name]);
    assert!(all.status.success(), "{}", text(&all));
    assert_eq!(stdout(&all), whole, "{}", text(&all));
    let on_host = lab(&["logs", &name, "server-host"]);
    assert!(on_host.status.success(), "{}", text(&on_host));
    assert_eq!(stdout(&on_host), whole, "{}", text(&on_host));
    let tailed = lab(&["logs", &name, "server-host", "--tail", "1"]);
    assert_eq!(
        stdout(&tailed),
        format!("{header}second line\n"),
        "{}",
        text(&tailed)
    );
    let c1 = lab(&["logs", &name, "c1"]);
    assert!(c1.status.success(), "{}", text(&c1));
    assert_eq!(
        stdout(&c1),
        format!("c1 in lab {name} runs no programs of yours (no logs)\n")
    );
    let nowhere = lab(&["logs", &name, "nowhere"]);
    assert_eq!(nowhere.status.code(), Some(2), "{}", text(&nowhere));
    assert!(
        text(&nowhere).contains(
            "has no host or container nowhere; its nodes are: client-host, server-host, c1, c2"
        ),
        "{}",
        text(&nowhere)
    );
    let run = run.interrupt(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert_gone(&name);
    assert_eq!(before, host_snapshot(), "the initial namespace changed");

    // Gone: the same error as `lab nat` gives, exit 2.
    let logs = lab(&["logs", &name]);
    let nat = lab(&["nat", &name]);
    assert_eq!(logs.status.code(), Some(2), "{}", text(&logs));
    assert_eq!(nat.status.code(), Some(2), "{}", text(&nat));
    assert_eq!(logs.stderr, nat.stderr, "{}\n{}", text(&logs), text(&nat));
}

/// A lab of built-in agents only: `lab logs` says it has none of the user's programs, exit 0.
#[test]
fn lab_logs_of_a_lab_without_programs_says_so() {
    if !root_or_skip("lab_logs_of_a_lab_without_programs_says_so") {
        return;
    }
    let name = unique_name("nologs");
    let guard = LabGuard::up(&lab_file("01-same-host.toml"), &name);
    let out = lab(&["logs", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        format!("lab {name} runs no programs of yours (no logs)\n")
    );
    drop(guard);
    assert_gone(&name);
}

/// `lab run --out DIR` copies the programs' logs into DIR/logs/ before teardown; a symlink
/// as DIR is refused before anything is built.
#[test]
fn run_out_keeps_the_programs_logs() {
    if !root_or_skip("run_out_keeps_the_programs_logs") {
        return;
    }
    let name = unique_name("outlogs");
    let _guard = LabGuard { name: name.clone() };
    let file = program_lab("outlogs", "");
    let dir = TempDir::new("outlogs-dir");
    let out = dir.join("out");
    let run = Running::start(
        &file,
        &name,
        &["--quiet", "--out", out.to_str().unwrap()],
        None,
    )
    .wait(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let log = std::fs::read_to_string(out.join("logs/server@srv#0.log"))
        .unwrap_or_else(|e| panic!("no log copied ({e}):\n{}", run.text()));
    assert!(log.contains("hello from server-host"), "{log}");
    assert!(out.join("report.json").is_file());
    assert_gone(&name);

    let link = dir.join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    let refused =
        Running::start(&file, &name, &["--out", link.to_str().unwrap()], None).wait(RUN_LIMIT);
    assert_eq!(refused.code, Some(2), "{}", refused.text());
    assert!(
        refused.stderr.contains("is a symlink"),
        "{}",
        refused.text()
    );
    assert!(!Path::new(RUN_DIR).join(&name).exists());
}
