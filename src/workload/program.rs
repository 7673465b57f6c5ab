//! The user's own programs in a run: the values their `{placeholders}` and `LAB_*` variables
//! take, the log file each process writes (opened by `lab`, under the lab's record), the end
//! of a log for an error message, and the kernel's count of what they hold, which stands in
//! for the progress a built-in agent reports: a program's own counts cannot be trusted or
//! parsed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::protocol::Progress;
use super::sockets::{Filter, TcpCounts, count_tcp_in};
use crate::lab::command::{Command, Role, Var};
use crate::lab::plan::{ClientGroup, Container, NetnsName, Plan, Server};

/// How much of a log an error quotes.
const TAIL_BYTES: u64 = 2048;

/// One process of a program: what it is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Who a program runs as: a name for people, and the ids it drops to (`None`: root, as the
/// file asked with `user = "root"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub ids: Option<(u32, u32)>,
}

impl std::fmt::Display for RunAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ids {
            Some((uid, _)) => write!(f, "{} (uid {uid})", self.name),
            None => write!(f, "{} (uid 0: the lab file asks for root)", self.name),
        }
    }
}

/// The user the file names, else the one who ran `sudo lab` (`SUDO_UID`, `SUDO_GID`), else
/// `nobody`: a lab file is input, and its programs need no privilege to open sockets in
/// namespaces `lab` made.
pub fn run_as(user: Option<&str>) -> Result<RunAs> {
    let lookup = |name: &str| -> Result<(u32, u32)> {
        crate::sys::user_by_name(name)
            .with_context(|| format!("look up user {name}"))?
            .ok_or_else(|| anyhow::anyhow!("no user `{name}` on this machine"))
    };
    if let Some(name) = user {
        let (uid, gid) = lookup(name)?;
        return Ok(RunAs {
            name: name.to_owned(),
            ids: (uid != 0).then_some((uid, gid)),
        });
    }
    let env_id = |key: &str| std::env::var(key).ok()?.parse::<u32>().ok();
    if let (Some(uid), Some(gid)) = (env_id("SUDO_UID"), env_id("SUDO_GID"))
        && uid != 0
    {
        let name = std::env::var("SUDO_USER").unwrap_or_else(|_| format!("uid {uid}"));
        return Ok(RunAs {
            name,
            ids: Some((uid, gid)),
        });
    }
    // Debian's nobody/nogroup: 65534 where the passwd database has no entry.
    let ids = crate::sys::user_by_name("nobody")
        .ok()
        .flatten()
        .unwrap_or((65_534, 65_534));
    Ok(RunAs {
        name: "nobody".into(),
        ids: Some(ids),
    })
}

/// Process `process` of `processes` copies of a server's program.
pub fn server_launch(
    plan: &Plan,
    server: &Server,
    command: &Command,
    process: u32,
    processes: u32,
) -> Launch {
    let value = |v: Var| match v {
        Var::Port => server.port.to_string(),
        Var::Process => process.to_string(),
        Var::Processes => processes.to_string(),
        Var::Node => plan.host(server.host).name.to_string(),
        Var::Lab => plan.name.to_string(),
        // Validation refused the client's placeholders in a server's command.
        _ => String::new(),
    };
    Launch {
        argv: command.expand(&value),
        env: Command::env(Role::Server, &value),
    }
}

/// Process `process` of `processes` of a client's program in `container`, with its share of
/// the container's connections.
pub fn client_launch(
    plan: &Plan,
    group: &ClientGroup,
    container: &Container,
    target: SocketAddrV4,
    command: &Command,
    process: u32,
    processes: u32,
) -> Launch {
    let connections = share(group.connections.get(), process, processes);
    let value = |v: Var| match v {
        Var::Target => target.to_string(),
        Var::TargetHost => target.ip().to_string(),
        Var::TargetPort => target.port().to_string(),
        Var::Connections => connections.to_string(),
        Var::Process => process.to_string(),
        Var::Processes => processes.to_string(),
        Var::Container | Var::Node => container.name.to_string(),
        Var::Lab => plan.name.to_string(),
        Var::Port => String::new(),
    };
    Launch {
        argv: command.expand(&value),
        env: Command::env(Role::Client, &value),
    }
}

/// A command line as a shell would read it back: arguments with spaces, quotes or control
/// characters quoted (`$'...'` for those with newlines), for messages and reports.
pub fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%{}".contains(c));
            if plain {
                a.clone()
            } else if a.chars().any(char::is_control) {
                let mut s = String::from("$'");
                for c in a.chars() {
                    match c {
                        '\n' => s.push_str("\\n"),
                        '\t' => s.push_str("\\t"),
                        '\'' => s.push_str("\\'"),
                        '\\' => s.push_str("\\\\"),
                        c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
                        c => s.push(c),
                    }
                }
                s.push('\'');
                s
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One process of the user's programs in a plan, as `lab run` starts it: who it is, where it
/// runs, what it is told, and the log it writes. Pure: `lab check` shows these, `lab logs`
/// finds a node's logs with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `server` or `client`.
    pub role: &'static str,
    /// The server's or the client group's name.
    pub name: String,
    /// The node it runs on: a server's host, a client's container.
    pub node: String,
    /// Its index among the processes of its server, or of its client group in its container.
    pub process: u32,
    /// How many processes its server (or its client group in its container) has.
    pub processes: u32,
    /// `server srv#0`, `client load c1#1`: the agent's label, as `lab run` names it.
    pub label: String,
    pub launch: Launch,
}

impl Planned {
    /// The name of its log file under the lab's log directory ([`open_log`]'s).
    pub fn log_name(&self) -> String {
        log_name(&self.label)
    }
}

/// The label `lab run` gives process `process` of a server.
pub fn server_label(server: &Server, process: u32) -> String {
    format!("server {}#{process}", server.name)
}

/// The label `lab run` gives process `process` of a client group in `container`.
pub fn client_label(group: &ClientGroup, container: &Container, process: u32) -> String {
    format!("client {} {}#{process}", group.name, container.name)
}

/// The file name of a log whose process is labelled `label`: `server srv#0` ->
/// `server@srv#0.log` (what [`open_log`] creates).
pub fn log_name(label: &str) -> String {
    // Names hold letters, digits, `-`, `_` and `.`: `@` between the words and the label's `#`
    // keep two labels from ever sharing a file (`a-b c` and `a b-c` would, with `-`).
    let name: String = label
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '#') => c,
            _ => '@',
        })
        .collect();
    format!("{name}.log")
}

/// Every process of the user's programs in `plan`, in the order `lab run` starts them:
/// servers, then each client group container by container. Built-in agents are not listed.
pub fn planned(plan: &Plan) -> Vec<Planned> {
    let mut out = Vec::new();
    for server in &plan.servers {
        let Some(command) = &server.command else {
            continue;
        };
        let processes = server.processes.map_or(1, |p| p.get());
        for p in 0..processes {
            out.push(Planned {
                role: "server",
                name: server.name.to_string(),
                node: plan.host(server.host).name.to_string(),
                process: p,
                processes,
                label: server_label(server, p),
                launch: server_launch(plan, server, command, p, processes),
            });
        }
    }
    for group in &plan.clients {
        let Some(command) = &group.command else {
            continue;
        };
        let processes = group.processes.map_or(1, |p| p.get());
        for (i, &cid) in group.containers.iter().enumerate() {
            let c = plan.container(cid);
            for p in 0..processes {
                out.push(Planned {
                    role: "client",
                    name: group.name.to_string(),
                    node: c.name.to_string(),
                    process: p,
                    processes,
                    label: client_label(group, c, p),
                    launch: client_launch(
                        plan,
                        group,
                        c,
                        group.target_of(i),
                        command,
                        p,
                        processes,
                    ),
                });
            }
        }
    }
    out
}

/// The log files (names under the lab's log directory) of the programs that run on `node`
/// (a host's servers, a container's clients), or of every program when `node` is `None`; in
/// start order, each once.
pub fn logs_of(plan: &Plan, node: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in planned(plan) {
        if node.is_none_or(|n| n == p.node) {
            let name = p.log_name();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Copies every log of `from` (the lab's log directory) into `to`, which is created (0700)
/// if missing and must not be a symlink; no file is read or written through a symlink.
/// Returns the files written, by name.
pub fn copy_logs(from: &Path, to: &Path) -> Result<Vec<String>> {
    use std::os::unix::fs::DirBuilderExt as _;
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", from.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Ok(names);
    }
    match std::fs::DirBuilder::new().mode(0o700).create(to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(to)
                .with_context(|| format!("inspect {}", to.display()))?;
            if !meta.is_dir() {
                anyhow::bail!(
                    "{} is not a directory (a symlink is refused); the logs are not copied",
                    to.display()
                );
            }
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", to.display())),
    }
    for name in &names {
        let src = from.join(name);
        let dst = to.join(name);
        let mut input = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&src)
            .with_context(|| format!("read {}", src.display()))?;
        let mut output = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&dst)
            .with_context(|| format!("write {}", dst.display()))?;
        std::io::copy(&mut input, &mut output)
            .with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
    }
    Ok(names)
}

/// Process `process`'s share of `total`: the remainder goes to the first ones.
pub fn share(total: u32, process: u32, processes: u32) -> u32 {
    let n = processes.max(1);
    total / n + u32::from(process < total % n)
}

/// Creates the log file of one process under `dir` (0600, never through a symlink), for its
/// stdout and stderr.
pub fn open_log(dir: &Path, label: &str) -> Result<(File, PathBuf)> {
    let path = dir.join(log_name(label));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("create the log {}", path.display()))?;
    Ok((file, path))
}

/// The last lines of a log, for an error message ("" when it is empty or unreadable).
pub fn tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    // A cut first line is not worth quoting.
    let skip = usize::from(len > TAIL_BYTES && lines.len() > 1);
    let kept = &lines[skip..];
    kept[kept.len().saturating_sub(10)..].join("\n")
}

/// What the kernel says a namespace's sockets are doing, as a client (per destination) or a
/// server (listeners, per local address) sees them: asking for one side only keeps the
/// count's maps to a few addresses however many sockets there are.
pub fn count(netns: &NetnsName, server: bool) -> Result<TcpCounts> {
    count_tcp_in(
        netns,
        if server {
            Filter::SERVER
        } else {
            Filter::CLIENT
        },
    )
}

/// A client program's progress in its container, towards `target`, from the kernel: open
/// connections, and connects in progress (SYN-SENT).
pub fn client_progress(counts: &TcpCounts, target: SocketAddrV4) -> Progress {
    let c = counts.by_remote.get(&target).copied().unwrap_or_default();
    Progress {
        established: c.established,
        in_flight: c.syn_sent,
        ..Progress::default()
    }
}

/// A server program's progress on its host: open connections on `port`, per local address.
pub fn server_progress(counts: &TcpCounts, port: u16) -> Progress {
    let mut by_local: HashMap<Ipv4Addr, u64> = HashMap::new();
    for (addr, c) in &counts.by_local {
        if addr.port() == port && c.established > 0 {
            *by_local.entry(*addr.ip()).or_default() += c.established;
        }
    }
    let mut by_local_address: Vec<(Ipv4Addr, u64)> = by_local.into_iter().collect();
    by_local_address.sort();
    Progress {
        established: by_local_address.iter().map(|(_, n)| n).sum(),
        by_local_address,
        queued: counts.queued.get(&port).copied().unwrap_or(0),
        ..Progress::default()
    }
}

/// A program process's memory (resident, proportional), in bytes, from /proc: 0 when it is
/// gone. Only the process `lab` started: what it forks is not counted.
pub fn memory(pid: u32) -> (u64, u64) {
    let kib = |file: &str, key: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or(0, |k| k * 1024)
    };
    (kib("status", "VmRSS:"), kib("smaps_rollup", "Pss:"))
}

/// Whether something listens on `port` (on any address) in the counted namespace.
pub fn listens(counts: &TcpCounts, port: u16) -> bool {
    counts.listening.iter().any(|a| a.port() == port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_one_at_most() {
        for (total, n) in [(25_000, 2), (10, 3), (2, 4), (75_000, 7), (1, 1)] {
            let shares: Vec<u32> = (0..n).map(|p| share(total, p, n)).collect();
            assert_eq!(shares.iter().sum::<u32>(), total, "{total}/{n}: {shares:?}");
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(hi - lo <= 1, "{shares:?}");
        }
        assert_eq!(share(10, 0, 3), 4);
    }

    #[test]
    fn command_lines_read_back_as_a_shell_would() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            display(&argv(&["/opt/s", "-l", "0.0.0.0:9000"])),
            "/opt/s -l 0.0.0.0:9000"
        );
        assert_eq!(
            display(&argv(&["sh", "-c", "echo it's"])),
            "sh -c 'echo it'\\''s'"
        );
        assert_eq!(
            display(&argv(&["python3", "-c", "a\nb"])),
            "python3 -c $'a\\nb'"
        );
        assert_eq!(display(&argv(&[""])), "''");
    }

    #[test]
    fn a_log_is_created_private_and_its_tail_quoted() {
        let dir = std::env::temp_dir().join(format!("lab-program-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut f, path) = open_log(&dir, "server srv#0").unwrap();
        assert_eq!(path.file_name().unwrap(), "server@srv#0.log");
        use std::io::Write as _;
        for i in 0..500 {
            writeln!(f, "line {i}").unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode.mode() & 0o777, 0o600);
        let t = tail(&path);
        assert!(t.ends_with("line 499") && t.starts_with("line 490"), "{t}");
        // A symlink planted where the log goes is refused.
        let planted = dir.join("client@x.log");
        std::os::unix::fs::symlink("/etc/passwd", &planted).unwrap();
        assert!(open_log(&dir, "client x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn log_names_are_open_logs_names() {
        let dir = std::env::temp_dir().join(format!("lab-program-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for label in ["server srv#0", "client load c1#12", "client a.b x-y#3"] {
            let (_, path) = open_log(&dir, label).unwrap();
            assert_eq!(path.file_name().unwrap().to_str().unwrap(), log_name(label));
        }
        // Copied into a new directory, file by file; a symlink as the target is refused.
        let to = dir.join("out");
        let copied = copy_logs(&dir, &to).unwrap();
        assert_eq!(copied.len(), 3, "{copied:?}");
        assert!(to.join("server@srv#0.log").is_file());
        let link = dir.join("link");
        std::os::unix::fs::symlink(&to, &link).unwrap();
        assert!(copy_logs(&dir, &link).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
