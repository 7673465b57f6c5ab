//! `lab run` with the user's own programs (root): the Go test programs of tests/programs/ hit
//! the article's wall and pass it with more server addresses, nginx and wrk fill a small NAT
//! path, and programs that fail (exit at once, never listen, die early, do not exist, are
//! interrupted, or whose `lab run` is killed) leave nothing behind: no namespace, no record, no
//! process. Also: the file's `rate`, `timeout` ... behave like the flags, which override them.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::programs::{GoPrograms, go_programs, user_line};
use common::*;
use serde_json::Value;

/// How long one `lab run` of these tests may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

// The big runs (tens of thousands of connections, or timed against wrk's 20 s) take turns
// (common::heavy): on a small machine two of them at once would only measure the machine.

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Root and the Go programs, or None after skipping.
fn go(test: &str) -> Option<GoPrograms> {
    if !root_or_skip(test) {
        return None;
    }
    match go_programs() {
        Ok(p) => Some(p),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// The topology of a lab file of labs/: everything before its `[servers.srv]` (its server,
/// clients and expectations are the test's own).
fn topology_of(file: &str) -> String {
    let text = std::fs::read_to_string(lab_file(file)).expect("read lab file");
    let at = text.find("[servers.srv]").expect("a [servers.srv]");
    text[..at].to_owned()
}

fn quoted(p: &Path) -> String {
    format!("{:?}", p.to_str().expect("utf-8 path"))
}

/// The Go server on port 9000 of server-host, in `processes` processes.
fn go_server(progs: &GoPrograms, processes: u32) -> String {
    format!(
        r#"
[servers.srv]
host = "server-host"
port = 9000
command = [{}, "-l", "0.0.0.0:{{port}}"]
processes = {processes}
{}"#,
        quoted(&progs.server),
        user_line(progs)
    )
}

/// The Go client in every container of `c`, `connections` each in `processes` processes.
fn go_client(progs: &GoPrograms, connect: &str, connections: u32, processes: u32) -> String {
    format!(
        r#"
[clients.load]
containers = ["c"]
connect = [{connect}]
connections = {connections}
command = [{}, "-target", "{{target}}", "-n", "{{connections}}", "-timeout", "10s"]
processes = {processes}
{}"#,
        quoted(&progs.client),
        user_line(progs)
    )
}

/// A small lab: one container, `connections` from the Go client to the Go server. The client
/// is started by `sh`, which first leaves a child of its own behind, `sleep SLEEP` (in the
/// program's process group), then becomes the Go client.
fn small_go_lab(progs: &GoPrograms, connections: u32, run: &str, sleep: &str) -> String {
    format!(
        r#"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.client-host.docker]
[hosts.server-host]
lan = "lan"
addresses = ["192.168.49.5"]
[containers.c]
host = "client-host"
{}{}
[run]
{run}
"#,
        go_server(progs, 1),
        go_client(progs, r#""192.168.49.5:9000""#, connections, 1).replace(
            "command = [",
            &format!(r#"command = ["/bin/sh", "-c", "sleep {sleep} & exec \"$0\" \"$@\"", "#)
        )
    )
}

// ---- processes --------------------------------------------------------------------------

/// A process seen once: pid and start time (a reused pid is not mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: u32,
    start: u64,
}

fn start_time(pid: u32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = s[s.rfind(')')? + 2..].split(' ').collect();
    Some((rest.get(19)?.parse().ok()?, rest.first()?.chars().next()?))
}

fn alive(p: Proc) -> bool {
    start_time(p.pid).is_some_and(|(start, state)| start == p.start && state != 'Z')
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Network namespace inodes of lab `name`'s nodes.
fn lab_netns(name: &str) -> Vec<u64> {
    namespaces_with_prefix(&format!("{name}-"))
        .iter()
        .filter_map(|ns| std::fs::metadata(common::netns_file(ns)).ok())
        .map(|m| m.ino())
        .collect()
}

fn netns_of(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The processes running one of `exes` in a namespace of lab `name`.
fn programs_in_lab(name: &str, exes: &[&Path]) -> Vec<Proc> {
    let netns = lab_netns(name);
    pids()
        .into_iter()
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exes.iter().any(|e| exe == *e))
                && netns_of(pid).is_some_and(|n| netns.contains(&n))
        })
        .filter_map(|pid| {
            let (start, _) = start_time(pid)?;
            Some(Proc { pid, start })
        })
        .collect()
}

/// Waits until at least `n` processes of `exes` run in lab `name`, and returns them.
fn wait_for_programs(name: &str, exes: &[&Path], n: usize) -> Vec<Proc> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = programs_in_lab(name, exes);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{n} programs in lab {name}: only {found:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every one of `procs` is gone (allowing a moment for the kernel to reap them).
fn assert_procs_gone(procs: &[Proc]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while procs.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<&Proc> = procs.iter().filter(|&&p| alive(p)).collect();
    assert!(left.is_empty(), "program processes left behind: {left:?}");
}

/// Processes whose command line holds `needle` as one of its arguments.
fn processes_with_arg(needle: &str) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == needle.as_bytes()))
        })
        .collect()
}

/// No process has `arg` among its arguments (allowing a moment for the kernel).
fn assert_arg_gone(arg: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with_arg(arg).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = processes_with_arg(arg);
    assert!(left.is_empty(), "a program's child is left: pids {left:?}");
}

/// `lab run FILE --name NAME ARGS...` without the `--timeout` that [`Running::start`] adds (so
/// the file's `[run] timeout` counts), to its end; killed (our child, by pid) past `limit`.
fn run_plain(file: &Path, name: &str, args: &[&str], limit: Duration) -> Finished {
    use std::os::unix::process::CommandExt as _;
    let mut child = lab_command()
        .arg("run")
        .arg(file)
        .args(["--name", name])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn lab run");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let f = Finished {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "lab run did not end within {limit:?}:\n{}",
        f.text()
    );
    f
}

fn sum(v: &Value, key: &str) -> u64 {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| u(&x[key]))
        .sum()
}

/// The NAT path towards `dst` in the report: (ports used, capacity, exhausted).
fn nat_path(r: &Value, dst: &str) -> (u64, u64, bool) {
    let path = r["nat"][0]["paths"]
        .as_array()
        .expect("nat paths")
        .iter()
        .find(|p| p["dst"] == dst)
        .unwrap_or_else(|| panic!("no NAT path to {dst} in {:#}", r["nat"]))
        .clone();
    (
        u(&path["ports_used"]),
        u(&path["capacity"]),
        path["exhausted"].as_bool().expect("exhausted"),
    )
}

// ---- the article's numbers with the user's own programs ---------------------------------

/// Lab 02's wall with the Go server (4 processes, SO_REUSEPORT) and the Go client (2 processes
/// per container): the kernel counts exactly 64,512 established at both ends, the NAT path is
/// full and dropped the rest (insert_failed); nothing of the run is left afterwards.
#[test]
fn go_programs_hit_the_wall_of_lab_02() {
    let test = "go_programs_hit_the_wall_of_lab_02";
    let Some(progs) = go(test) else { return };
    let _turn = heavy();
    let before = host_snapshot();
    let name = unique_name("pwall");
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pwall",
        &format!(
            "{}{}{}",
            topology_of("02-cross-host.toml"),
            go_server(&progs, 4),
            go_client(&progs, r#""192.168.49.5:9000""#, 25_000, 2)
        ),
    );
    let run = Running::start(&file, &name, &["--json"], None);
    // 4 servers and 2 clients in each of 3 containers.
    let procs = wait_for_programs(&name, &[&progs.server, &progs.client], 10);
    assert_eq!(procs.len(), 10, "{procs:?}");
    let run = run.wait(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(u(&r["established"]), 64_512, "{}", run.text());
    let last = &r["outcome"]["last"];
    assert_eq!(sum(&last["clients"], "established"), 64_512, "{last:#}");
    assert_eq!(sum(&last["servers"], "established"), 64_512, "{last:#}");
    for c in last["clients"].as_array().unwrap() {
        let program = c["program"].as_str().expect("a client's program");
        assert!(
            program.starts_with(progs.client.to_str().unwrap()) && program.contains("-n 12500"),
            "{program}"
        );
        assert_eq!(u(&c["processes"]), 2, "{c}");
    }
    assert_eq!(last["clients"].as_array().unwrap().len(), 3);
    let server = &last["servers"][0];
    assert_eq!(
        server["program"].as_str(),
        Some(format!("{} -l 0.0.0.0:9000", progs.server.display()).as_str())
    );
    assert_eq!(u(&server["processes"]), 4);
    assert_eq!(last["dead_agents"], serde_json::json!([]));
    assert_eq!(
        nat_path(&r, "192.168.49.5:9000"),
        (64_512, 64_512, true),
        "{:#}",
        r["nat"]
    );
    assert!(
        u(&r["nat"][0]["stats"]["insert_failed"]) > 0,
        "{:#}",
        r["nat"][0]["stats"]
    );
    assert_gone(&name);
    assert_procs_gone(&procs);
    assert_eq!(before, host_snapshot(), "the initial namespace changed");
}

/// Lab 03 (three server addresses) with the Go programs under a 20,000 open-files limit: with
/// processes enough (2 clients of 12,500 per container, 8 servers) all 75,000 establish; with
/// one server process the server runs out of descriptors ("too many open files") and keeps
/// running, and the kernel still counts 75,000: the rest wait, established, in its accept
/// queue (what the kernel's count cannot see).
#[test]
fn go_programs_pass_the_wall_with_three_server_addresses_if_processes_fit_the_limit() {
    let test = "go_programs_pass_the_wall_with_three_server_addresses_if_processes_fit_the_limit";
    let Some(progs) = go(test) else { return };
    let _turn = heavy();
    let name = unique_name("pmore");
    let _guard = LabGuard { name: name.clone() };
    let connect = r#""192.168.49.5:9000", "192.168.49.15:9000", "192.168.49.25:9000""#;
    let lab = |servers: u32| {
        temp_lab(
            "pmore",
            &format!(
                "{}{}{}",
                topology_of("03-more-server-addresses.toml"),
                go_server(&progs, servers),
                go_client(&progs, connect, 25_000, 2)
            ),
        )
    };
    let file = lab(8);
    let run = Running::start(&file, &name, &["--json"], Some(20_000)).wait(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(u(&r["established"]), 75_000, "{}", run.text());
    let last = &r["outcome"]["last"];
    assert_eq!(sum(&last["clients"], "established"), 75_000, "{last:#}");
    assert_eq!(sum(&last["servers"], "established"), 75_000, "{last:#}");
    assert_eq!(
        last["servers"][0]["by_local_address"],
        serde_json::json!([
            ["192.168.49.5", 25_000],
            ["192.168.49.15", 25_000],
            ["192.168.49.25", 25_000]
        ]),
        "{last:#}"
    );
    assert_eq!(u(&r["outcome"]["max_open_files"]), 20_000);
    assert_eq!(u(&last["servers"][0]["queued"]), 0, "{last:#}");
    assert_gone(&name);

    // One server process: it cannot hold 75,000 descriptors under 20,000.
    let file = lab(1);
    let run = Running::start(&file, &name, &["--json"], Some(20_000));
    let log = Path::new(RUN_DIR).join(&name).join("logs/server@srv#0.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut said = false;
    while !said && Instant::now() < deadline {
        said = std::fs::read_to_string(&log).is_ok_and(|t| t.contains("too many open files"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = run.wait(RUN_LIMIT);
    assert!(
        said,
        "the server never said it ran out of files:\n{}",
        run.text()
    );
    let r = run.report();
    // What the server could not accept waits, established, in its accept queue (backlog
    // 65,535, the host's somaxconn): the kernel's count is still 75,000, and the listen queue
    // says how many of them the program never took (it holds under 20,000).
    assert_eq!(u(&r["established"]), 75_000, "{}", run.text());
    let server = &r["outcome"]["last"]["servers"][0];
    assert_eq!(u(&server["processes"]), 1);
    let queued = u(&server["queued"]);
    assert!(
        (55_000..=75_000).contains(&queued) && 75_000 - queued < 20_000,
        "{server:#}"
    );
    assert!(
        r["verdict"].to_string().contains("has not accepted"),
        "{:#}",
        r["verdict"]
    );
    assert_eq!(
        r["outcome"]["last"]["dead_agents"],
        serde_json::json!([]),
        "the server keeps running"
    );
    assert_gone(&name);
}

/// nginx (nginx-light) as the server and wrk as the client, through lab 07's NAT of 300 ports:
/// 500 keep-alive connections asked, the kernel counts exactly 300 established at the server,
/// taken while wrk runs (the run ends by the file's timeout, before wrk's 20 s).
#[test]
fn nginx_and_wrk_fill_a_nat_path_of_300_ports() {
    let test = "nginx_and_wrk_fill_a_nat_path_of_300_ports";
    if !root_or_skip(test) {
        return;
    }
    let (nginx, wrk) = (Path::new("/usr/sbin/nginx"), Path::new("/usr/bin/wrk"));
    if !nginx.exists() || !wrk.exists() {
        return skip(test, "needs nginx (nginx-light) and wrk installed");
    }
    let dir = TempDir::new("pnginxconf");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr;\n\
             pid {}/nginx.pid;\nevents {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_requests 1000000000; keepalive_timeout 600s;\n\
             server {{ listen 0.0.0.0:9000; location / {{ return 200 \"ok\"; }} }} }}\n",
            dir.display()
        ),
    )
    .expect("write nginx.conf");
    let _turn = heavy();
    let name = unique_name("pnginx");
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pnginx",
        &format!(
            r#"{}
[servers.srv]
host = "server-host"
port = 9000
command = ["/usr/sbin/nginx", "-e", "stderr", "-p", {dir}, "-c", {conf}]
# Its config and pid file are in the suite's temporary directory, which is root's alone.
user = "root"

[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000"]
connections = 250
command = ["wrk", "-c", "{{connections}}", "-t", "1", "-d", "20s", "http://{{target}}/"]

[run]
timeout = "8s"
"#,
            topology_of("07-small-ports.toml"),
            dir = quoted(&dir),
            conf = quoted(&conf),
        ),
    );
    let begin = Instant::now();
    let run = run_plain(&file, &name, &["--json"], RUN_LIMIT);
    assert!(
        begin.elapsed() < Duration::from_secs(20),
        "not while wrk ran"
    );
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(
        r["outcome"]["stop"],
        serde_json::json!({"reason": "timeout"}),
        "wrk keeps 200 connects in flight: no settling"
    );
    let last = &r["outcome"]["last"];
    assert_eq!(u(&last["servers"][0]["established"]), 300, "{}", run.text());
    assert_eq!(sum(&last["clients"], "established"), 300, "{last:#}");
    assert_eq!(last["dead_agents"], serde_json::json!([]));
    assert!(
        last["clients"][0]["program"]
            .as_str()
            .is_some_and(|p| p == "wrk -c 250 -t 1 -d 20s http://192.168.49.5:9000/"),
        "{last:#}"
    );
    assert_eq!(nat_path(&r, "192.168.49.5:9000"), (300, 300, true));
    assert_gone(&name);
    assert!(
        processes_with_arg(conf.to_str().unwrap()).is_empty(),
        "nginx left running"
    );
}

// ---- programs that fail -----------------------------------------------------------------

/// A lab with the built-in server or client replaced by the given `[servers.srv]` /
/// `[clients.load]` extras (TOML lines).
fn two_hosts(server_extra: &str, client_extra: &str) -> String {
    format!(
        r#"
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
[servers.srv]
host = "server-host"
port = 9000
{server_extra}
[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000"]
connections = 100
{client_extra}
"#
    )
}

/// A server program that exits at once: the run fails (exit 4) before any client starts,
/// quoting the program's last words and its exit status.
#[test]
fn a_server_program_that_exits_at_once_fails_the_run_before_the_clients() {
    if !root_or_skip("a_server_program_that_exits_at_once_fails_the_run_before_the_clients") {
        return;
    }
    let dir = TempDir::new("pboom");
    let mark = dir.join("client-started");
    let name = unique_name("pboom");
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pboom",
        &two_hosts(
            r#"command = ["/bin/sh", "-c", "echo boom >&2; exit 3"]"#,
            &format!(
                r#"command = ["/bin/sh", "-c", "touch {}; sleep 30"]"#,
                mark.display()
            ),
        ),
    );
    let run = Running::start(&file, &name, &["--json"], None).wait(RUN_LIMIT);
    assert_eq!(run.code, Some(4), "{}", run.text());
    assert!(run.stderr.contains("boom"), "{}", run.text());
    assert!(run.stderr.contains("exit status: 3"), "{}", run.text());
    assert!(!mark.exists(), "a client started");
    assert_gone(&name);
}

/// A server program that never listens: the run fails after the 15 s bound, saying so.
#[test]
fn a_server_program_that_never_listens_fails_after_15_s() {
    if !root_or_skip("a_server_program_that_never_listens_fails_after_15_s") {
        return;
    }
    let name = unique_name("pdeaf");
    let _guard = LabGuard { name: name.clone() };
    // An argument of this test's own, to find the process by.
    let secs = format!("60.{}", std::process::id());
    let file = temp_lab(
        "pdeaf",
        &two_hosts(&format!(r#"command = ["/bin/sleep", "{secs}"]"#), ""),
    );
    let begin = Instant::now();
    let run = Running::start(&file, &name, &["--json"], None);
    let sleeper = wait_for_programs(&name, &[Path::new("/usr/bin/sleep")], 1);
    let run = run.wait(RUN_LIMIT);
    let took = begin.elapsed();
    assert_eq!(run.code, Some(4), "{}", run.text());
    assert!(took >= Duration::from_secs(15), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        run.stderr.contains(&format!(
            "(`/bin/sleep {secs}`) is not listening on port 9000"
        )),
        "{}",
        run.text()
    );
    assert_gone(&name);
    assert_procs_gone(&sleeper);
    assert!(processes_with_arg(&secs).is_empty(), "sleep left running");
}

/// A client program that exits early while the built-in server runs: reported dead (exit 4),
/// the rest torn down.
#[test]
fn a_client_program_that_exits_early_is_reported_dead() {
    if !root_or_skip("a_client_program_that_exits_early_is_reported_dead") {
        return;
    }
    let name = unique_name("pquit");
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pquit",
        &two_hosts(
            "",
            r#"command = ["/bin/sh", "-c", "sleep 1; exit 0"]
[run]
settle = "5s""#,
        ),
    );
    let run = Running::start(&file, &name, &["--json"], None);
    // Every process of the run in the lab's namespaces: the built-in server's agent and the
    // client's sh.
    let lab = release_lab();
    let procs = wait_for_programs(&name, &[lab.as_path(), Path::new("/usr/bin/dash")], 2);
    let run = run.wait(RUN_LIMIT);
    assert_eq!(run.code, Some(4), "{}", run.text());
    let r = run.report();
    let dead = r["outcome"]["last"]["dead_agents"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let message = dead[0].as_str().unwrap();
    assert!(message.contains("exit status: 0"), "{message}");
    assert!(message.contains("client load"), "{message}");
    assert!(run.stderr.contains(message), "{}", run.text());
    assert_gone(&name);
    assert_procs_gone(&procs);
}

/// A command that does not exist: an absolute path is refused by `lab check` (exit 2) at its
/// place in the file; a bare name not in PATH fails the run, quoting what the agent wrote.
#[test]
fn a_command_that_does_not_exist_is_refused_or_fails_the_run() {
    if !root_or_skip("a_command_that_does_not_exist_is_refused_or_fails_the_run") {
        return;
    }
    let text = two_hosts(r#"command = ["/no/such/program-xyz", "-l", "{port}"]"#, "");
    let file = temp_lab("pnone", &text);
    let line = text.lines().position(|l| l.starts_with("command")).unwrap() + 1;
    let out = lab(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:{line}:", file.display())),
        "no file:line:col: {err}"
    );
    assert!(err.contains("/no/such/program-xyz"), "{err}");

    let name = unique_name("pnone");
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pnone",
        &two_hosts(r#"command = ["no-such-program-xyz"]"#, ""),
    );
    let run = Running::start(&file, &name, &["--json"], None).wait(RUN_LIMIT);
    assert_eq!(run.code, Some(4), "{}", run.text());
    assert!(
        run.stderr
            .contains("run no-such-program-xyz: not found in PATH ("),
        "{}",
        run.text()
    );
    assert_gone(&name);
}

fn text_of(out: &std::process::Output) -> String {
    common::text(out)
}

/// Ctrl-C during `hold = "forever"` with the Go programs: the hold ends (exit 0, ended_by
/// SIGINT) and nothing of the run is left.
#[test]
fn ctrl_c_ends_a_hold_forever_of_go_programs() {
    let test = "ctrl_c_ends_a_hold_forever_of_go_programs";
    let Some(progs) = go(test) else { return };
    let name = unique_name("pint");
    // The client's child, by an argument of this test's own.
    let sleep = format!("300.{}1", std::process::id());
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pint",
        &small_go_lab(&progs, 200, "settle = \"1s\"\nhold = \"forever\"", &sleep),
    );
    let run = Running::until_hold(&file, &name, &["--json"]);
    let procs = programs_in_lab(&name, &[&progs.server, &progs.client]);
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert_eq!(
        processes_with_arg(&sleep).len(),
        1,
        "the client's child runs"
    );
    assert!(
        run.err
            .wait_for_line(Duration::from_secs(15), |l| l.starts_with("holding")
                && l.contains("200 established")),
        "no hold line"
    );
    let run = run.interrupt(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(r["outcome"]["hold"]["ended_by"], libc::SIGINT, "{r:#}");
    assert_eq!(u(&r["established"]), 200);
    assert_gone(&name);
    assert_procs_gone(&procs);
    assert_arg_gone(&sleep);
}

/// `kill -9` of `lab run` during a hold: the programs die with it or with `lab down`, and
/// `lab down` removes the namespaces and the record.
#[test]
fn kill_9_of_lab_run_then_lab_down_leaves_no_program() {
    let test = "kill_9_of_lab_run_then_lab_down_leaves_no_program";
    let Some(progs) = go(test) else { return };
    let name = unique_name("pkill");
    let sleep = format!("300.{}2", std::process::id());
    let _guard = LabGuard { name: name.clone() };
    let file = temp_lab(
        "pkill",
        &small_go_lab(&progs, 200, "settle = \"1s\"\nhold = \"forever\"", &sleep),
    );
    let mut run = Running::start_env(
        &file,
        &name,
        &["--json"],
        None,
        &[("LAB_PAUSE_AT", "run:hold")],
    );
    assert!(
        run.err.paused_at("run:hold", Duration::from_secs(30)),
        "never reached the hold"
    );
    let procs = programs_in_lab(&name, &[&progs.server, &progs.client]);
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert_eq!(
        processes_with_arg(&sleep).len(),
        1,
        "the client's child runs"
    );
    // SAFETY: our own child, by pid.
    assert_eq!(unsafe { libc::kill(run.pid() as i32, libc::SIGKILL) }, 0);
    let _ = run.child.wait();
    assert!(Path::new(RUN_DIR).join(&name).exists(), "the record stays");
    let out = lab(&["down", &name]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert_gone(&name);
    assert_procs_gone(&procs);
    assert_arg_gone(&sleep);
}

// ---- the file's run settings and the flags ----------------------------------------------

/// The built-in client's `rate` in the file paces the ramp (300 at 100/s: ≥ 2.5 s), `--rate`
/// overrides it; `[run] timeout` ends a slow run (stop reason timeout), `--timeout` overrides
/// it.
#[test]
fn the_files_rate_and_timeout_behave_like_the_flags_which_override_them() {
    if !root_or_skip("the_files_rate_and_timeout_behave_like_the_flags_which_override_them") {
        return;
    }
    let name = unique_name("prate");
    let _guard = LabGuard { name: name.clone() };
    let text = two_hosts("", "rate = 100\nconnect_timeout = \"2s\"\nin_flight = 50")
        .replace("connections = 100", "connections = 300")
        + "[run]\nsettle = \"1s\"\ntimeout = \"2s\"\n";
    let file = temp_lab("prate", &text);
    // From starting the clients to the last change in the counts.
    let ramp = |r: &Value| -> u64 { u(&r["outcome"]["settle_ms"]) };
    // The file's 2 s end the ramp of 300 at 100/s.
    let run = run_plain(&file, &name, &["--json"], RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(
        r["outcome"]["stop"],
        serde_json::json!({"reason": "timeout"})
    );
    let cut = u(&r["established"]);
    assert!((100..300).contains(&cut), "{}", run.text());
    assert_gone(&name);
    // --timeout overrides it: the ramp finishes, paced by the file's rate.
    let run = run_plain(&file, &name, &["--json", "--timeout", "30"], RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(
        r["outcome"]["stop"],
        serde_json::json!({"reason": "all_done"})
    );
    assert_eq!(u(&r["established"]), 300, "{}", run.text());
    let paced = ramp(&r);
    assert!(paced >= 2500, "300 at 100/s in {paced} ms");
    assert_gone(&name);
    // --rate overrides the file's rate.
    let args = ["--json", "--timeout", "30", "--rate", "1000"];
    let run = run_plain(&file, &name, &args, RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let r = run.report();
    assert_eq!(u(&r["established"]), 300, "{}", run.text());
    let fast = ramp(&r);
    assert!(
        fast + 1500 <= paced,
        "--rate 1000: {fast} ms, the file's 100/s: {paced} ms"
    );
    assert_gone(&name);
}
