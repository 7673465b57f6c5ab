//! Shared helpers for tests that build real labs as root.
//!
//! - Each test gets a lab name of its own (`--name`), so tests run in parallel without colliding.
//! - [`LabGuard`] takes the lab down when dropped, also when the test panics.
//! - Sockets are made inside a lab namespace on a dedicated thread (a socket keeps the namespace
//!   it was created in); the test never connects to a lab address from the initial namespace.
#![allow(dead_code)]
pub mod programs;
pub mod schema;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const LAB: &str = env!("CARGO_BIN_EXE_lab");

/// `lab` as the integration tests run it: the release binary `lab.sh test` built and named in
/// `LAB_RELEASE_BIN`, the one users run, else the debug one, [`LAB`] (plain `cargo test`).
/// The suite is bound by the two cores: the two million connections take 92 s there against
/// 252 s in the debug build, and every lab the other tests run costs less CPU too. The unit
/// tests keep the debug build's assertions.
pub fn release_lab() -> PathBuf {
    std::env::var_os("LAB_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(LAB))
}

/// Lab records of tests live apart from the user's (`/run/lab`), so `lab clean` in a test never
/// sees a user's labs, and the suite can prove it left no record behind.
pub const RUN_DIR: &str = "/run/lab-tests";

/// `lab` as the tests run it ([`release_lab`]).
pub fn lab_command() -> Command {
    let mut c = Command::new(release_lab());
    c.env("LAB_RUN_DIR", RUN_DIR);
    c
}

/// A record directory of one test's own (`LAB_RUN_DIR`), beside [`RUN_DIR`]: for tests whose
/// verbs act on every lab they can see (`lab clean`), so they never touch a lab of a test
/// running in parallel. Dropped, it takes down every lab still recorded in it, then removes
/// itself if empty (a record that cannot be removed stays, for the suite's leftover check).
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn new(tag: &str) -> Self {
        Self(PathBuf::from(format!(
            "{RUN_DIR}-{tag}-{}",
            std::process::id()
        )))
    }

    /// `lab` with its records here.
    pub fn command(&self) -> Command {
        let mut c = Command::new(release_lab());
        c.env("LAB_RUN_DIR", &self.0);
        c
    }

    pub fn lab(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("run the lab binary")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let names: Vec<String> = std::fs::read_dir(&self.0)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        for name in names {
            let _ = self.lab(&["down", "--force", &name]);
        }
        // The global-limits lock file may stay (see README); nothing else may.
        let _ = std::fs::remove_file(self.0.join(".global-limits.lock"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// True when the test may build labs. Without root it skips, except under CI where skipping
/// would hide the tests: there it fails.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root, and CI must run the lab tests as root"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// A test that cannot check what it is for on this machine: outside CI it says why and the
/// caller returns (passes); under CI a skip would hide the test, so it fails with the reason.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run here ({why}), and CI must run every test"
    );
    eprintln!("skipping {test}: {why}");
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn lab_file(name: &str) -> PathBuf {
    repo().join("labs").join(name)
}

/// Every lab file in labs/, sorted.
pub fn lab_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("labs"))
        .expect("read labs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A short lab name unique to this test and process: `t<tag><pid % 100000>`.
pub fn unique_name(tag: &str) -> String {
    format!("t{tag}{}", std::process::id() % 100_000)
}

pub fn lab(args: &[&str]) -> Output {
    if let [verb, rest @ ..] = args
        && (*verb == "up" || *verb == "run")
    {
        rest.iter()
            .filter(|a| a.ends_with(".toml"))
            .for_each(|f| check_raises_are_locked(Path::new(f)));
    }
    lab_command()
        .args(args)
        .output()
        .expect("run the lab binary")
}

/// The `--json` output of a `lab` command: parsed, and validated against its published schema
/// (docs/schema/), so every test that reads a field also proves the contract holds.
pub fn json_of(kind: schema::Kind, out: &Output) -> serde_json::Value {
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`lab {}` printed no JSON ({e}):\n{}",
            kind.name(),
            text(out)
        )
    });
    schema::assert_valid(kind, &doc);
    doc
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Takes the lab down when dropped (`--force`, ignoring "not up"), so a failing test cleans up.
pub struct LabGuard {
    pub name: String,
}

impl LabGuard {
    /// `lab up FILE --name NAME`, asserting success.
    pub fn up(file: &Path, name: &str) -> Self {
        check_raises_are_locked(file);
        let out = lab(&["up", file.to_str().expect("utf-8 path"), "--name", name]);
        let guard = Self {
            name: name.to_owned(),
        };
        assert!(out.status.success(), "lab up failed:\n{}", text(&out));
        guard
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = lab(&["down", "--force", &self.name]);
    }
}

/// Where `ip netns` (Debian's iproute2) and `lab` keep named namespaces.
pub fn netns_dir() -> PathBuf {
    PathBuf::from("/run/netns")
}

/// The bind mount of the named namespace, as `ip netns` made or sees it.
pub fn netns_file(ns: &str) -> PathBuf {
    netns_dir().join(ns)
}

/// Runs `f` on a fresh thread that has entered the named network namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = netns_file(ns);
    std::thread::spawn(move || {
        let file =
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: setns on a valid fd affects only this short-lived thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// A listener created inside `ns`.
pub fn listen_in(ns: &str, addr: &str) -> TcpListener {
    let addr = addr.to_owned();
    in_netns(ns, move || {
        TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
    })
}

/// Connects from inside `ns`, with a timeout, returning the stream or the error.
pub fn connect_from(ns: &str, to: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let to: SocketAddr = to.parse().expect("socket address");
    in_netns(ns, move || TcpStream::connect_timeout(&to, timeout))
}

/// Output of a command run as is (for `ip`, `nft`: tests may use them to check).
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The machine's global limits as tests share them. A test whose lab raises one (a file with
/// `raise = [...]`, which `lab up` and `lab run` act on) holds this lock for its whole length:
/// such tests run one at a time, and each counts as a raise in a generation number beside the
/// lock (odd while one runs). A [`HostSnapshot`] notes the generation it was taken in, and two
/// snapshots compare the raisable limits only when no raise ran between them (or both are the
/// raiser's own): in CI, `interrupting_up_anywhere_leaves_nothing` once saw fs.file-max raised
/// by the million lab that `every_lab_in_labs_comes_up_connects_and_goes_down` had up at the
/// time. Nobody waits on a raise but another raise. An flock on a file beside the records: it
/// holds across threads and test processes.
pub struct HostLock {
    _file: std::fs::File,
}

thread_local! {
    /// This thread holds the lock: its snapshots compare the limits it raises itself.
    static EXCLUSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The limits a lab file may raise, by their snapshot keys.
const RAISABLE: &[&str] = &[
    "sysctl fs/file-max",
    "sysctl net/netfilter/nf_conntrack_max",
    "sysctl net/netfilter/nf_conntrack_buckets",
];

fn generation_file() -> PathBuf {
    Path::new(RUN_DIR).join(".host-limits.gen")
}

/// The raise generation now: odd while a raising test runs.
fn generation() -> u64 {
    std::fs::read_to_string(generation_file())
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The next generation that is odd (`raising`) or even, written whole (rename) so that a
/// reader never sees half of it. By parity, not by one: a raiser killed mid-way leaves an odd
/// number, which the next raiser's start and end make even again.
fn bump_generation(raising: bool) {
    let mut next = generation() + 1;
    if (next % 2 == 1) != raising {
        next += 1;
    }
    let tmp = Path::new(RUN_DIR).join(format!(".host-limits.gen.{}", std::process::id()));
    std::fs::write(&tmp, next.to_string()).expect("write the raise generation");
    std::fs::rename(&tmp, generation_file()).expect("rename the raise generation");
}

/// An exclusive flock on `RUN_DIR/<name>`, held while the file is open: across threads and
/// test processes (nextest runs each test in a process of its own).
fn lock_file(name: &str) -> std::fs::File {
    std::fs::create_dir_all(RUN_DIR).expect("make the tests' record directory");
    let path = Path::new(RUN_DIR).join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own; it blocks until granted.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    file
}

impl HostLock {
    /// For a test that runs a lab raising a global limit: taken first, held to the end.
    pub fn exclusive() -> Self {
        let file = lock_file(".host-limits.lock");
        bump_generation(true);
        EXCLUSIVE.with(|e| e.set(true));
        Self { _file: file }
    }
}

/// One big run at a time (tens of thousands of connections in a container engine, or a run
/// timed against wrk): on a small machine two at once would only measure the machine. Held
/// while it lives.
pub struct Heavy {
    _file: std::fs::File,
}

/// Waits for, then holds, the [`Heavy`] turn.
pub fn heavy() -> Heavy {
    Heavy {
        _file: lock_file(".heavy.lock"),
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        EXCLUSIVE.with(|e| e.set(false));
        bump_generation(false);
    }
}

/// Whether the lab file `file` allows raising a global limit (`lab up` and `lab run` do).
pub fn raises(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim_start().starts_with("raise") && l.contains('='))
    })
}

/// Panics unless this thread holds [`HostLock::exclusive`] when the lab file `file` raises a
/// global limit: such a test would otherwise skew other tests' snapshots of the host.
pub fn check_raises_are_locked(file: &Path) {
    assert!(
        !raises(file) || EXCLUSIVE.with(|e| e.get()),
        "{} raises global limits: the test must hold common::HostLock::exclusive() first",
        file.display()
    );
}

/// What a lab could change in the initial namespace: its links, addresses, routes, nftables
/// ruleset and the sysctls a lab sets (global limits and the per-namespace ones it writes inside
/// its own namespaces). Built to compare robustly on any machine: address lifetimes and route
/// expiry (which count down on DHCP/SLAAC hosts), counters and link statistics are left out, and
/// a setting whose module is not loaded yet (nf_conntrack_max before conntrack) is compared
/// only once both sides have it. The limits a lab may raise are compared only when no other
/// test's raise ran between the two snapshots ([`HostLock`]).
#[derive(Clone)]
pub struct HostSnapshot(std::collections::BTreeMap<String, Option<String>>, Taken);

/// When a snapshot was taken, as far as raises go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// By the test holding [`HostLock`].
    ByRaiser,
    /// In this raise generation.
    In(u64),
}

impl Taken {
    /// Whether two snapshots compare the raisable limits.
    fn limits_comparable(self, other: Taken) -> bool {
        match (self, other) {
            (Taken::ByRaiser, Taken::ByRaiser) => true,
            (Taken::In(a), Taken::In(b)) => a == b && a % 2 == 0,
            _ => false,
        }
    }
}

/// Fields that change on their own, with no lab involved.
const VOLATILE: &[&str] = &[
    "valid_life_time",
    "preferred_life_time",
    // Set when the preferred lifetime runs out (a loaded machine once took the engine's
    // snapshot test past its address's 50 s).
    "deprecated",
    "expires",
    "stats",
    "stats64",
    "operstate",
];

fn strip_volatile(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !VOLATILE.contains(&k.as_str()));
            m.values_mut().for_each(strip_volatile);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

pub fn host_snapshot() -> HostSnapshot {
    snapshot_of(None)
}

/// The snapshot of the initial namespace (`None`) or of a lab namespace (to test the snapshot
/// itself without touching the machine).
pub fn snapshot_of(netns: Option<&str>) -> HostSnapshot {
    // Before reading: a raise that starts while this reads is a raise in between.
    let taken = if EXCLUSIVE.with(|e| e.get()) {
        Taken::ByRaiser
    } else {
        Taken::In(generation())
    };
    let (ip, exec) = match netns {
        Some(ns) => (format!("ip -n {ns}"), format!("ip netns exec {ns} ")),
        None => ("ip".to_owned(), String::new()),
    };
    let mut m = std::collections::BTreeMap::new();
    for c in [
        "-j link show",
        "-j addr show",
        "-j route show table all",
        "-j -6 route show table all",
        "-j rule show",
    ] {
        let c = format!("{ip} {c}");
        let mut v: serde_json::Value =
            serde_json::from_str(&sh(&c)).unwrap_or_else(|e| panic!("`{c}` printed no JSON: {e}"));
        strip_volatile(&mut v);
        m.insert(
            c.clone(),
            Some(serde_json::to_string_pretty(&v).unwrap_or_default()),
        );
    }
    // -s: stateless, without counters (a host's own firewall counts its own traffic).
    let nft = format!("{exec}nft -s list ruleset");
    m.insert(nft.clone(), Some(sh(&nft)));
    for k in [
        "fs/file-max",
        "fs/nr_open",
        "net/netfilter/nf_conntrack_max",
        "net/ipv4/ip_forward",
        "net/ipv4/ip_local_port_range",
        "net/ipv4/tcp_syn_retries",
        "net/core/somaxconn",
        "net/ipv4/tcp_max_syn_backlog",
        "net/ipv4/ip_unprivileged_port_start",
        "net/ipv4/ping_group_range",
    ] {
        let value = match netns {
            None => std::fs::read_to_string(format!("/proc/sys/{k}")).ok(),
            Some(_) => Command::new("sh")
                .arg("-c")
                .arg(format!("{exec}cat /proc/sys/{k}"))
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
        };
        m.insert(format!("sysctl {k}"), value);
    }
    // A raise that began while this read is in between too (an odd generation compares with
    // none).
    let taken = match taken {
        Taken::In(g) if generation() != g => Taken::In(1),
        t => t,
    };
    HostSnapshot(m, taken)
}

impl HostSnapshot {
    /// The keys whose values differ from `other`'s (by the same rules as `==`).
    pub fn changed(&self, other: &Self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| self.compares(other, k))
            .filter(|(k, a)| match (a, other.0.get(*k)) {
                (Some(a), Some(Some(b))) => a != b,
                (None, Some(_)) | (Some(_), Some(None)) => false,
                (_, None) => true,
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl HostSnapshot {
    /// Whether key `k` is compared with `other`'s (a raisable limit only with no raise between).
    fn compares(&self, other: &Self, k: &str) -> bool {
        !RAISABLE.contains(&k) || self.1.limits_comparable(other.1)
    }
}

impl PartialEq for HostSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().all(|(k, a)| {
                !self.compares(other, k)
                    || match (a, other.0.get(k)) {
                        (Some(a), Some(Some(b))) => a == b,
                        // Absent on one side: a module loaded (or not yet) in between, not a change.
                        (None, Some(_)) | (Some(_), Some(None)) => true,
                        (_, None) => false,
                    }
            })
    }
}

impl std::fmt::Debug for HostSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, v) in &self.0 {
            writeln!(f, "## {k}\n{}", v.as_deref().unwrap_or("(absent)"))?;
        }
        Ok(())
    }
}

pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir(netns_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that nothing of lab `name` is left: no namespace (in the netns directory, in `ip netns list`,
/// or as a mount), no record.
pub fn assert_gone(name: &str) {
    let prefix = format!("{name}-");
    let left = namespaces_with_prefix(&prefix);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let listed = sh("ip netns list");
    assert!(
        !listed.lines().any(|l| l.starts_with(&prefix)),
        "ip netns list still shows lab {name}:\n{listed}"
    );
    let record = Path::new(RUN_DIR).join(name);
    assert!(!record.exists(), "record {} left behind", record.display());
    // A namespace is kept alive by its bind mount in the netns directory: none may be left
    // mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let netns_mount = format!("{}/{prefix}", netns_dir().display());
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&netns_mount))
        .collect();
    assert!(left.is_empty(), "namespace mounts left behind: {left:?}");
}

/// Opens `n` connections from inside `ns` to `to` at once (one thread each, all in flight
/// together, as a load client would), and returns the ones that were established plus the
/// errors of the others. Bounded: every attempt gives up after `timeout`.
pub fn connect_many(
    ns: &str,
    to: &str,
    n: usize,
    timeout: Duration,
) -> (Vec<TcpStream>, Vec<std::io::Error>) {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (ns, to) = (ns.to_owned(), to.to_owned());
            std::thread::spawn(move || connect_from(&ns, &to, timeout))
        })
        .collect();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for t in threads {
        match t.join().expect("connect thread") {
            Ok(s) => ok.push(s),
            Err(e) => failed.push(e),
        }
    }
    (ok, failed)
}

/// A fresh empty directory of this test process (under `TMPDIR`), removed when dropped, so the
/// suite leaves no temporary directory behind (`lab.sh test` checks).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lab-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab file in a [`TempDir`] of its own; it is a path (`&file` where a `&Path` is wanted),
/// and dropping it removes the file and its directory.
pub struct TempLab {
    pub file: PathBuf,
    _dir: TempDir,
}

impl std::ops::Deref for TempLab {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.file
    }
}

impl AsRef<Path> for TempLab {
    fn as_ref(&self) -> &Path {
        &self.file
    }
}

impl AsRef<std::ffi::OsStr> for TempLab {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.file.as_os_str()
    }
}

/// Writes a lab file into a fresh temporary directory.
pub fn temp_lab(tag: &str, text: &str) -> TempLab {
    let dir = TempDir::new(tag);
    let file = dir.join(format!("{tag}.toml"));
    std::fs::write(&file, text).expect("write lab file");
    TempLab { file, _dir: dir }
}

/// A server inside a lab namespace that keeps accepting (so its accept queue never fills and
/// drops SYNs, which would look like a NAT drop) and holds every connection until dropped.
pub struct Acceptor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<(TcpStream, SocketAddr)>>>,
}

impl Acceptor {
    pub fn start(ns: &str, addr: &str) -> Self {
        let listener = listen_in(ns, addr);
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok(conn) => {
                        held.push(conn);
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            // Connections the kernel completed before `finish` are still queued: take them.
            while let Ok(conn) = listener.accept() {
                held.push(conn);
            }
            held
        });
        Self {
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// Waits until at least `n` connections have been accepted (true), or `limit` passed.
    pub fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.accepted.load(std::sync::atomic::Ordering::Relaxed) < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Stops accepting and returns the peers of every connection accepted.
    pub fn finish(mut self) -> Vec<SocketAddr> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let held = self
            .thread
            .take()
            .map(|t| t.join().expect("acceptor"))
            .unwrap_or_default();
        held.into_iter().map(|(_, peer)| peer).collect()
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A child's stderr, collected on a thread that also reports each `lab: paused at POINT` line
/// (the `LAB_PAUSE_AT` test hook), so a test can signal the child exactly there.
pub struct Stderr {
    text: Option<std::thread::JoinHandle<String>>,
    paused: std::sync::mpsc::Receiver<String>,
    /// Every line so far, for [`Stderr::wait_for_line`].
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stderr {
    pub fn follow(r: impl std::io::Read + Send + 'static) -> Self {
        use std::io::BufRead as _;
        let (tx, paused) = std::sync::mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lines.clone();
        let text = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if let Some(point) = line.strip_prefix("lab: paused at ") {
                    let _ = tx.send(point.to_owned());
                }
                if let Ok(mut v) = seen.lock() {
                    v.push(line.clone());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Self {
            text: Some(text),
            paused,
            lines,
        }
    }

    /// Waits until a line for which `f` is true has been written (true), or `limit` passed or
    /// the child closed its stderr first (false).
    pub fn wait_for_line(&self, limit: Duration, f: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.lines.lock().is_ok_and(|v| v.iter().any(|l| f(l))) {
                return true;
            }
            let ended = self.text.as_ref().is_none_or(|t| t.is_finished());
            if ended || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True once the child has paused at `point`; false if it did not within `limit` (it may
    /// have ended or failed first).
    pub fn paused_at(&self, point: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.paused.recv_timeout(left) {
                Ok(p) if p == point => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    /// Everything written, once the child has closed its stderr.
    pub fn text(&mut self) -> String {
        self.text
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// A `lab run` in progress, its stdout and stderr collected on threads.
pub struct Running {
    pub child: Child,
    out: Option<JoinHandle<String>>,
    pub err: Stderr,
}

/// A finished `lab run`.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The `--json` report, validated against docs/schema/run.schema.json.
    pub fn report(&self) -> serde_json::Value {
        let doc = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{}", self.text()));
        schema::assert_valid(schema::Kind::Run, &doc);
        doc
    }
}

fn collect(mut r: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

impl Running {
    /// `lab run FILE --name NAME ARGS...`, in a process group of its own (so a signal to the
    /// group reaches what this test started and nothing else). `nofile` sets the open-files
    /// limit (soft and hard) it runs under.
    pub fn start(file: &Path, name: &str, args: &[&str], nofile: Option<u64>) -> Self {
        Self::start_env(file, name, args, nofile, &[])
    }

    pub fn start_env(
        file: &Path,
        name: &str,
        args: &[&str],
        nofile: Option<u64>,
        env: &[(&str, &str)],
    ) -> Self {
        check_raises_are_locked(file);
        let mut cmd: Command = lab_command();
        cmd.envs(env.iter().copied());
        cmd.arg("run")
            .arg(file)
            .args(["--name", name, "--timeout", "50"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(n) = nofile {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads `lim`, copied into the
            // closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn lab run");
        let out = collect(child.stdout.take().expect("stdout"));
        let err = Stderr::follow(child.stderr.take().expect("stderr"));
        Self {
            child,
            out: Some(out),
            err,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `lab run` held at the start of its hold (pause point `run:hold`): the ramp has settled
    /// and the hold begins once the pause ends.
    pub fn until_hold(file: &Path, name: &str, args: &[&str]) -> Self {
        let run = Self::start_env(file, name, args, None, &[("LAB_PAUSE_AT", "run:hold")]);
        assert!(
            run.err.paused_at("run:hold", Duration::from_secs(30)),
            "never reached the hold"
        );
        run
    }

    /// Ctrl-C as a terminal sends it (SIGINT to the run's process group), then waits.
    pub fn interrupt(self, limit: Duration) -> Finished {
        // SAFETY: the process group of our own child, by pid.
        assert_eq!(unsafe { libc::kill(-(self.pid() as i32), libc::SIGINT) }, 0);
        self.wait(limit)
    }

    /// Waits for the run to end; past `limit` kills it (by pid: our own child) and fails.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for lab run") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let finished = Finished {
            code: status.and_then(|s| s.code()),
            stdout: self
                .out
                .take()
                .map(|t| t.join().unwrap())
                .unwrap_or_default(),
            stderr: self.err.text(),
        };
        assert!(
            status.is_some(),
            "lab run did not end within {limit:?}:\n{}",
            finished.text()
        );
        finished
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion while it runs: stop it (our own child, by pid); the test's
        // LabGuard then takes the lab down.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
