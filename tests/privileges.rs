//! A lab file is input, not a licence: the user's programs run without root. A program that
//! tries root's things in a lab fails at each and the host does not change; a server on port 80
//! run as `nobody` accepts connections; under sudo (`SUDO_UID`/`SUDO_GID`, as sudo sets them)
//! programs run as the invoking user; `user = "root"` is the one way back to root. Needs root
//! (for the labs) and python3.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A server host `b` (10.9.0.2) and a container `c` on host `a`, the built-in client making
/// `connections` to `b:port`; the server is `command` (as given), holding every connection.
fn lab(tag: &str, port: u16, server: &str, connections: u32) -> TempLab {
    temp_lab(
        tag,
        &format!(
            r#"name = "{tag}"
[lans.lan]
subnet = "10.9.0.0/24"
[hosts.a]
lan = "lan"
addresses = ["10.9.0.1"]
[hosts.b]
lan = "lan"
addresses = ["10.9.0.2"]
[containers.c]
host = "a"
[servers.srv]
host = "b"
port = {port}
{server}
[clients.load]
containers = ["c"]
connect = ["10.9.0.2:{port}"]
connections = {connections}
[run]
settle = "1s"
hold = "forever"
[expect]
established = {connections}
"#
        ),
    )
}

/// A python3 server that first tries what only root may do, printing one line per try, then
/// listens on its port and holds what it accepts.
const TRIES: &str = r#"
import ctypes, os, socket, sys
def attempt(what, f):
    try:
        f()
        print(what, "ALLOWED", flush=True)
    except OSError as e:
        print(what, "denied", e.errno, flush=True)
def write(path):
    with open(path, "w") as f:
        f.write("1\n")
def raw():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
def mount():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/mnt", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
def module():
    libc = ctypes.CDLL(None, use_errno=True)
    # finit_module(-1, "", 0): EPERM before the descriptor is looked at, without CAP_SYS_MODULE.
    if libc.syscall(313, -1, b"", 0) != 0:
        raise OSError(ctypes.get_errno(), "finit_module")
print("uid", os.getuid(), "gid", os.getgid(), "groups", os.getgroups(), flush=True)
for line in open("/proc/self/status"):
    if line.startswith(("CapEff", "NoNewPrivs")):
        print(line.strip(), flush=True)
attempt("write /etc", lambda: write("/etc/lab-privileges-test"))
attempt("write fs.file-max", lambda: write("/proc/sys/fs/file-max"))
attempt("write a net sysctl", lambda: write("/proc/sys/net/ipv4/tcp_syn_retries"))
attempt("raw socket", raw)
attempt("mount", mount)
attempt("load a module", module)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1024)
held = []
while True:
    held.append(s.accept()[0])
"#;

/// Only what says who it is, and the listener: what a program run as root may safely do.
const WHO: &str = r#"
import os, socket, sys
print("uid", os.getuid(), "gid", os.getgid(), "groups", os.getgroups(), flush=True)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1024)
held = []
while True:
    held.append(s.accept()[0])
"#;

/// The server's `command` (and `user`): `script` run by python3 on the server's port. Never
/// [`TRIES`] with `user = "root"`: as root its tries succeed, on the host.
fn server_toml(script: &str, user: Option<&str>) -> String {
    assert!(
        !(script == TRIES && user == Some("root")),
        "root's things are tried unprivileged only"
    );
    let script = serde_json::to_string(script).expect("a JSON string is a TOML string");
    let user = user
        .map(|u| format!("user = \"{u}\"\n"))
        .unwrap_or_default();
    format!("command = [\"/usr/bin/python3\", \"-c\", {script}, \"{{port}}\"]\n{user}")
}

fn python_or_skip(test: &str) -> bool {
    if Path::new("/usr/bin/python3").exists() {
        return true;
    }
    skip(test, "needs /usr/bin/python3 (./lab.sh test installs it)");
    false
}

/// Runs the lab until its hold, returns the server's log, and ends the run with Ctrl-C.
fn log_during_hold(name: &str, file: &TempLab, env: &[(&str, &str)]) -> (String, Finished) {
    let mut all_env = vec![("LAB_PAUSE_AT", "run:hold")];
    all_env.extend_from_slice(env);
    let run = Running::start_env(file, name, &["--json"], None, &all_env);
    assert!(
        run.err.paused_at("run:hold", Duration::from_secs(30)),
        "never reached the hold"
    );
    let log = Path::new(RUN_DIR).join(name).join("logs/server@srv#0.log");
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    (text, run.interrupt(RUN_LIMIT))
}

/// The program runs as nobody with nothing of root's: every try fails, the host is as it was,
/// and its server on port 80 (a low port: the lab lets unprivileged programs bind them, as
/// Docker does in containers) accepts every connection.
#[test]
fn a_program_runs_as_nobody_and_can_do_nothing_of_roots() {
    let test = "a_program_runs_as_nobody_and_can_do_nothing_of_roots";
    if !root_or_skip(test) || !python_or_skip(test) {
        return;
    }
    let before = host_snapshot();
    let name = unique_name("privn");
    let _guard = LabGuard { name: name.clone() };
    let file = lab("privn", 80, &server_toml(TRIES, None), 200);
    let (log, run) = log_during_hold(&name, &file, &[("SUDO_UID", ""), ("SUDO_GID", "")]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(log.contains("uid 65534 gid 65534 groups []"), "{log}");
    assert!(log.contains("CapEff:\t0000000000000000"), "{log}");
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    for tried in [
        "write /etc",
        "write fs.file-max",
        "write a net sysctl",
        "raw socket",
        "mount",
        "load a module",
    ] {
        assert!(log.contains(&format!("{tried} denied")), "{tried}: {log}");
    }
    assert!(!log.contains("ALLOWED"), "{log}");
    assert!(!Path::new("/etc/lab-privileges-test").exists());
    let r = run.report();
    assert_eq!(r["established"], 200);
    let server = &r["outcome"]["last"]["servers"][0];
    assert_eq!(server["established"], 200, "{server}");
    assert_eq!(server["runs_as"], "nobody (uid 65534)", "{server}");
    assert!(
        run.stdout.is_empty() || !run.stdout.contains("uid 0"),
        "{}",
        run.text()
    );
    assert_gone(&name);
    assert_eq!(before, host_snapshot(), "the initial namespace changed");
}

/// Under sudo, programs run as the user who ran it (sudo's `SUDO_UID`/`SUDO_GID`, set here as
/// sudo sets them), and `user = "root"` in the file keeps root, saying so.
#[test]
fn programs_run_as_the_sudo_user_or_as_root_only_when_the_file_says_so() {
    let test = "programs_run_as_the_sudo_user_or_as_root_only_when_the_file_says_so";
    if !root_or_skip(test) || !python_or_skip(test) {
        return;
    }
    let name = unique_name("privs");
    let _guard = LabGuard { name: name.clone() };
    let file = lab("privs", 9000, &server_toml(TRIES, None), 50);
    let (log, run) = log_during_hold(
        &name,
        &file,
        &[
            ("SUDO_UID", "4242"),
            ("SUDO_GID", "4343"),
            ("SUDO_USER", "teacher"),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(log.contains("uid 4242 gid 4343 groups []"), "{log}");
    assert!(log.contains("write /etc denied"), "{log}");
    let server = &run.report()["outcome"]["last"]["servers"][0];
    assert_eq!(server["runs_as"], "teacher (uid 4242)", "{server}");
    assert_gone(&name);

    let file = lab("privs", 9000, &server_toml(WHO, Some("root")), 50);
    let (log, run) = log_during_hold(&name, &file, &[("SUDO_UID", "4242"), ("SUDO_GID", "4343")]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(log.contains("uid 0 gid 0"), "{log}");
    let server = &run.report()["outcome"]["last"]["servers"][0];
    assert_eq!(
        server["runs_as"], "root (uid 0: the lab file asks for root)",
        "{server}"
    );
    assert_gone(&name);
}
