//! Packaging: what the binary needs at run time, the GitHub Actions example, the Dockerfile, and
//! the machine checks (`preflight`) on this machine, including simulated missing requirements.
//!
//! Nothing here needs a Docker engine or the network: the workflow's run step is executed with
//! stand-ins for `sudo` and `lab`, the Dockerfile is read and every file, script and package it
//! names is checked here, and the runtime image's library list is proven by running the binary
//! in a chroot that holds only those libraries.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    LAB, RunDir, TempDir, host_snapshot, lab_command, repo, root_or_skip, skip, text, unique_name,
};

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The GitHub Actions example.

fn workflow() -> serde_yaml::Value {
    serde_yaml::from_str(&read("examples/github-actions.yml")).expect("the workflow is YAML")
}

fn steps(wf: &serde_yaml::Value) -> Vec<serde_yaml::Value> {
    let jobs = wf["jobs"].as_mapping().expect("jobs is a mapping");
    assert_eq!(jobs.len(), 1, "one job");
    let job = jobs.values().next().expect("a job");
    assert!(job["runs-on"].as_str().is_some(), "runs-on");
    job["steps"].as_sequence().expect("steps").clone()
}

fn step_named(wf: &serde_yaml::Value, name: &str) -> serde_yaml::Value {
    steps(wf)
        .into_iter()
        .find(|s| s["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("a step named {name:?}"))
}

#[test]
fn the_workflow_parses_builds_lab_and_runs_a_lab_that_exists() {
    let wf = workflow();
    // YAML 1.1 readers turn the key `on` into true; serde_yaml reads YAML 1.2, as GitHub does.
    assert!(wf["on"]["pull_request"].is_null() && wf["on"].get("push").is_some());
    assert_eq!(wf["defaults"]["run"]["shell"].as_str(), Some("bash"));
    let job = wf["jobs"]
        .as_mapping()
        .expect("jobs")
        .values()
        .next()
        .cloned();
    let job = job.expect("a job");
    let lab_file = job["env"]["LAB_FILE"].as_str().expect("env LAB_FILE");
    assert!(repo().join(lab_file).is_file(), "{lab_file} exists");
    assert!(
        job["env"]["LAB"]
            .as_str()
            .is_some_and(|l| l.ends_with("/bin/lab"))
    );

    let runs: Vec<String> = steps(&wf)
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_owned))
        .collect();
    let all = runs.join("\n");
    for package in ["libnftnl-dev", "libmnl-dev", "pkg-config"] {
        assert!(all.contains(package), "installs {package}");
        assert!(
            read("lab.sh").contains(package),
            "lab.sh lists {package} too"
        );
    }
    assert!(all.contains("cargo install --locked --path . --root"));
    assert!(all.contains(r#""$LAB" check "$LAB_FILE""#));

    let run = step_named(&wf, "Run the lab");
    let script = run["run"].as_str().expect("run script");
    assert!(
        script.contains(r#"sudo "$LAB" run "$LAB_FILE""#),
        "{script}"
    );
    // Nothing may let a failed lab pass: no continue-on-error, no condition on the step.
    assert!(run.get("continue-on-error").is_none() && run.get("if").is_none());
    assert!(script.trim_end().ends_with(r#"exit "$status""#), "{script}");
    // Every step after it that must run anyway says so.
    for s in ["Keep the report", "Nothing left behind"] {
        assert_eq!(step_named(&wf, s)["if"].as_str(), Some("always()"));
    }
    // The report kept is the directory `--out` wrote (report.html among its files).
    let keep = step_named(&wf, "Keep the report");
    assert_eq!(keep["uses"].as_str(), Some("actions/upload-artifact@v4"));
    let out = script
        .split_whitespace()
        .skip_while(|w| *w != "--out")
        .nth(1)
        .expect("the run step writes --out DIR");
    assert_eq!(
        keep["with"]["path"]
            .as_str()
            .map(|p| p.trim_end_matches('/')),
        Some(out)
    );
}

/// Runs the "Run the lab" step as GitHub would (`bash --noprofile --norc -eo pipefail`) with
/// `sudo` and `lab` stand-ins: the step must exit with lab's status, and explain any failure.
#[test]
fn the_run_step_fails_the_job_exactly_when_lab_fails() {
    let wf = workflow();
    let script = step_named(&wf, "Run the lab")["run"]
        .as_str()
        .expect("run script")
        .to_owned();
    let tmp = TempDir::new("wf");
    let bin = tmp.0.join("bin");
    std::fs::create_dir(&bin).expect("mkdir bin");
    let write_exe = |path: &Path, body: &str| {
        std::fs::write(path, body).expect("write stand-in");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    write_exe(&bin.join("sudo"), "#!/bin/sh\nexec \"$@\"\n");
    let fake_lab = tmp.0.join("lab");
    write_exe(
        &fake_lab,
        "#!/bin/sh\necho \"$@\" > \"$ARGS_FILE\"\nexit \"$FAKE_EXIT\"\n",
    );
    let script_file = tmp.0.join("step.sh");
    std::fs::write(&script_file, &script).expect("write step");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for code in [0, 1, 2, 3, 4, 130] {
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(&tmp.0)
            .env("PATH", &path)
            .env("LAB", &fake_lab)
            .env("LAB_FILE", "labs/02-cross-host.toml")
            .env("ARGS_FILE", tmp.0.join("args"))
            .env("FAKE_EXIT", code.to_string())
            .output()
            .expect("run bash");
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.contains("::error"), code != 0, "{stdout}");
        let args = std::fs::read_to_string(tmp.0.join("args")).expect("lab was run");
        assert_eq!(args.trim(), "run labs/02-cross-host.toml --out lab-out");
    }
}

// ---------------------------------------------------------------------------------------------
// lab.sh without root.

/// `bash lab.sh ARGS` as a user that is not root (as root: in a user namespace of its own,
/// where it is uid 65534 but keeps its access to the files it can read), with only `dir` on
/// `PATH`.
fn lab_sh_as_a_user(dir: &Path, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new("/bin/bash");
    cmd.arg(repo().join("lab.sh"))
        .args(args)
        .env_clear()
        .env("PATH", dir)
        .env("HOME", "/home/someone")
        .env("ARGS_FILE", dir.join("args"));
    // SAFETY: geteuid cannot fail; unshare is async-signal-safe and changes only the child.
    if unsafe { libc::geteuid() } == 0 {
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    cmd.output().expect("run lab.sh")
}

/// The README's two commands work both ways: as root lab.sh goes on (CI runs it so), from a
/// user account it runs itself again through sudo with the same arguments, PATH and cargo's
/// homes; and where there is no sudo (a Debian box installed without it) it stops at once,
/// saying to run it as root, instead of failing with "sudo: command not found".
#[test]
fn lab_sh_without_root_uses_sudo_or_says_how() {
    let tmp = TempDir::new("labsh-user");
    let out = lab_sh_as_a_user(&tmp.0, &["run", "labs/07-small-ports.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lab.sh: needs root") && err.contains("sudo is not installed"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "run it as root, e.g. su -c '{} run labs/07-small-ports.toml'",
            repo().join("lab.sh").display()
        )),
        "{err}"
    );

    let sudo = tmp.0.join("sudo");
    std::fs::write(
        &sudo,
        "#!/bin/bash\nprintf '%s\\n' \"$@\" > \"$ARGS_FILE\"\n",
    )
    .expect("sudo");
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = lab_sh_as_a_user(&tmp.0, &["run", "labs/07-small-ports.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let args = std::fs::read_to_string(tmp.0.join("args")).expect("sudo was run");
    let args: Vec<&str> = args.lines().collect();
    let lab_sh = repo().join("lab.sh");
    assert_eq!(
        args,
        [
            "env",
            &format!("PATH={}", tmp.0.display()),
            "RUSTUP_HOME=/home/someone/.rustup",
            "CARGO_HOME=/home/someone/.cargo",
            lab_sh.to_str().expect("utf-8 path"),
            "run",
            "labs/07-small-ports.toml"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile.

#[derive(Debug)]
struct Instruction {
    stage: usize,
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn dockerfile() -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut stage = 0;
    let mut pending = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            pending.push_str(part);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (keyword, args) = full.split_once(char::is_whitespace).expect("KEYWORD args");
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stage += 1;
        }
        out.push(Instruction {
            stage,
            keyword,
            args: args.trim().to_owned(),
        });
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends inside a continuation"
    );
    out
}

fn of<'a>(ins: &'a [Instruction], stage: usize, keyword: &str) -> Vec<&'a str> {
    ins.iter()
        .filter(|i| i.stage == stage && i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// The paths .dockerignore keeps out of the build context (plain paths only: the test matches
/// them exactly, so the file must not use patterns).
fn docker_ignored() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .inspect(|l| assert!(!l.contains(['*', '?', '[', '!']), "plain paths only: {l}"))
        .map(|l| l.trim_matches('/').to_owned())
        .collect()
}

fn is_ignored(path: &str, ignored: &[String]) -> bool {
    ignored
        .iter()
        .any(|i| path == i || path.starts_with(&format!("{i}/")))
}

/// The packages `apt-get install` names in a RUN command.
fn apt_packages(run: &str) -> Vec<String> {
    run.split("&&")
        .filter_map(|cmd| {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "install")?;
            (words.first() == Some(&"apt-get")).then(|| {
                words[at + 1..]
                    .iter()
                    .filter(|w| !w.starts_with('-'))
                    .map(|w| (*w).to_owned())
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect()
}

#[test]
fn the_dockerfile_builds_with_lab_sh_and_copies_what_exists() {
    let ins = dockerfile();
    let from = |stage| of(&ins, stage, "FROM");
    assert_eq!(from(1), ["rust:1-bookworm AS build"]);
    assert_eq!(from(2), ["debian:bookworm-slim"]);
    assert_eq!(ins.iter().map(|i| i.stage).max(), Some(2));

    // Build stage: the whole context, then lab.sh, which installs its packages and builds.
    let ignored = docker_ignored();
    assert_eq!(of(&ins, 1, "WORKDIR"), ["/src"]);
    assert_eq!(of(&ins, 1, "COPY"), [". ."]);
    for needed in [
        "lab.sh",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src",
        "labs",
    ] {
        assert!(repo().join(needed).exists(), "{needed} exists");
        assert!(!is_ignored(needed, &ignored), "{needed} is in the context");
    }
    for heavy in ["target", ".git"] {
        assert!(
            is_ignored(heavy, &ignored),
            "{heavy} stays out of the context"
        );
    }
    assert_eq!(of(&ins, 1, "RUN"), ["./lab.sh --version"]);
    let lab_sh = repo().join("lab.sh");
    let mode = std::fs::metadata(&lab_sh)
        .expect("lab.sh")
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "lab.sh is executable");
    let script = read("lab.sh");
    assert!(script.contains("apt-get install") && script.contains("cargo build --release"));
    assert!(script.contains("exec target/release/lab \"$@\""));

    // Runtime stage: what the build stage made, and the labs.
    let copies = of(&ins, 2, "COPY");
    assert!(copies.contains(&"--from=build /src/target/release/lab /usr/local/bin/lab"));
    for copy in copies.iter().filter(|c| !c.starts_with("--from")) {
        let src = copy.split_whitespace().next().expect("COPY source");
        assert!(repo().join(src).exists(), "COPY {src}: exists");
        assert!(!is_ignored(src, &ignored), "COPY {src}: in the context");
    }
    assert!(copies.contains(&"labs /lab/labs"));
    assert_eq!(of(&ins, 2, "WORKDIR"), ["/lab"]);
    assert_eq!(of(&ins, 2, "ENTRYPOINT"), [r#"["lab"]"#]);

    // The documented command runs a lab file that the image holds.
    let ci = read("docs/ci.md");
    let line = ci
        .lines()
        .find(|l| l.starts_with("docker run --rm --privileged"))
        .expect("docs/ci.md has the docker run line");
    let file = line
        .split_whitespace()
        .find(|w| w.starts_with("labs/"))
        .expect("a lab file");
    assert!(repo().join(file).is_file(), "{file}");
    assert!(read("Dockerfile").contains(&line.replace(" --init", "")));
}

/// Every package the Dockerfile installs exists in Debian's archive as apt knows it here (this
/// machine is Debian 12, like both stages), and lab.sh's own lists (all paths, tests only) do too.
#[test]
fn every_package_named_is_a_debian_package() {
    let ins = dockerfile();
    let runtime: Vec<String> = of(&ins, 2, "RUN")
        .iter()
        .flat_map(|r| apt_packages(r))
        .collect();
    assert_eq!(runtime, ["libmnl0", "iproute2", "nftables"]);
    let script = read("lab.sh");
    let list = |name: &str| {
        script
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}=(")))
            .and_then(|l| l.strip_suffix(')'))
            .unwrap_or_else(|| panic!("lab.sh has {name}=(...)"))
    };
    // What every path installs, and what only `lab.sh test` adds (Go for tests/programs/...).
    let mut all: BTreeSet<&str> = list("packages").split_whitespace().collect();
    let for_tests: Vec<&str> = list("test_packages").split_whitespace().collect();
    assert!(for_tests.contains(&"golang-go"), "{for_tests:?}");
    all.extend(for_tests);
    all.extend(runtime.iter().map(String::as_str));
    if Command::new("apt-cache").arg("--version").output().is_err() {
        skip(
            "every_package_named_is_a_debian_package",
            "no apt-cache to ask the archive",
        );
        return;
    }
    // One call for all (each call reads the whole cache): it prints one stanza per package it
    // knows and silently skips the others.
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(&all)
        .output()
        .expect("run apt-cache");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let known: BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .map(str::trim)
        .collect();
    let unknown: Vec<&&str> = all.iter().filter(|p| !known.contains(**p)).collect();
    assert!(
        unknown.is_empty(),
        "packages apt does not know: {unknown:?}"
    );
}

/// The binary's shared libraries, by `ldd`: soname -> path.
fn needed_libraries(binary: &str) -> Vec<(String, PathBuf)> {
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
            let path = match rest.split_once("=> ") {
                Some((_, after)) => after.split_whitespace().next()?,
                None if name.starts_with('/') => name,
                None => return None, // linux-vdso.so.1
            };
            Some((name.to_owned(), PathBuf::from(path)))
        })
        .collect()
}

fn libnftnl_archive_installed() -> bool {
    let out = Command::new("pkg-config")
        .args(["--variable=libdir", "libnftnl"])
        .output();
    out.ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .is_some_and(|dir| Path::new(&dir).join("libnftnl.a").is_file())
}

/// The runtime image installs the package of every library the binary needs beyond glibc and
/// libgcc (which every Debian image has), and libnftnl is linked in where its archive exists.
#[test]
fn the_runtime_image_installs_every_library_the_binary_needs() {
    let libs = needed_libraries(LAB);
    let names: Vec<&str> = libs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"libmnl.so.0"), "{names:?}");
    if libnftnl_archive_installed() {
        assert!(
            !names.iter().any(|n| n.starts_with("libnftnl")),
            "libnftnl.a is installed, so libnftnl is linked in: {names:?}"
        );
    }
    let ins = dockerfile();
    let runtime: Vec<String> = of(&ins, 2, "RUN")
        .iter()
        .flat_map(|r| apt_packages(r))
        .collect();
    for (name, path) in &libs {
        // With merged /usr, ldd says /lib/... while dpkg recorded /usr/lib/... (or the other
        // way round): ask for each spelling.
        let spellings = [
            path.clone(),
            Path::new("/usr").join(path.strip_prefix("/").unwrap_or(path)),
            path.canonicalize().unwrap_or_else(|_| path.clone()),
        ];
        let owner = spellings.iter().find_map(|p| {
            let out = Command::new("dpkg").arg("-S").arg(p).output().ok()?;
            out.status.success().then_some(out)
        });
        let Some(out) = owner else {
            skip(
                "the_runtime_image_installs_every_library_the_binary_needs",
                &format!("no dpkg package owns {}", path.display()),
            );
            continue;
        };
        let owner = String::from_utf8_lossy(&out.stdout);
        let package = owner
            .split(':')
            .next()
            .expect("dpkg -S prints package: path")
            .trim();
        if matches!(package, "libc6" | "libgcc-s1") {
            continue;
        }
        assert!(
            runtime.iter().any(|p| p == package),
            "{name} comes from {package}, which the runtime image does not install"
        );
    }
}

/// Runs the binary in a chroot holding only the libraries `ldd` lists: proof that the list is
/// complete (and that without libmnl it is not).
#[test]
fn the_binary_runs_with_only_the_libraries_it_lists() {
    if !root_or_skip("the_binary_runs_with_only_the_libraries_it_lists") {
        return;
    }
    let libs = needed_libraries(LAB);
    let root = TempDir::new("chroot");
    let place = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        // A hard link when on the same file system (the debug binary is large), else a copy.
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    };
    place(Path::new(LAB), &root.0.join("lab"));
    for (_, path) in &libs {
        let real = std::fs::canonicalize(path).expect("library path");
        let inside = root.0.join(path.strip_prefix("/").expect("absolute"));
        place(&real, &inside);
    }
    let run = || {
        Command::new("chroot")
            .arg(&root.0)
            .args(["/lab", "--version"])
            .output()
            .expect("run chroot")
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("lab "));
    let (_, mnl) = libs
        .iter()
        .find(|(n, _)| n == "libmnl.so.0")
        .expect("libmnl");
    std::fs::remove_file(root.0.join(mnl.strip_prefix("/").expect("absolute"))).expect("rm");
    let out = run();
    assert!(!out.status.success(), "runs without libmnl?");
    assert!(String::from_utf8_lossy(&out.stderr).contains("libmnl.so.0"));
}

// ---------------------------------------------------------------------------------------------
// The machine checks, for real.

#[test]
fn preflight_passes_on_this_machine_and_changes_nothing() {
    if !root_or_skip("preflight_passes_on_this_machine_and_changes_nothing") {
        return;
    }
    let dir = RunDir::new("ok");
    let before = host_snapshot();
    let out = lab_command()
        .env("LAB_RUN_DIR", &dir.0)
        .arg("clean")
        .output()
        .expect("run lab");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to clean"));
    assert_eq!(
        before,
        host_snapshot(),
        "the checks changed the initial namespace"
    );
}

/// `lab up` under `setpriv` (root, CAP_NET_ADMIN dropped): exit 3, naming only that.
#[test]
fn without_cap_net_admin_up_exits_3_and_names_it() {
    if !root_or_skip("without_cap_net_admin_up_exits_3_and_names_it") {
        return;
    }
    let name = unique_name("pkgcap");
    let _guard = common::LabGuard { name: name.clone() };
    let file = common::lab_file("07-small-ports.toml");
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-net_admin", "--"])
        .args(["env", "LAB_RUN_DIR=/run/lab-tests", LAB, "up"])
        .arg(&file)
        .args(["--name", &name])
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this machine cannot run labs: CAP_NET_ADMIN"),
        "{err}"
    );
    assert!(
        !err.contains("CAP_SYS_ADMIN") && err.contains("--privileged"),
        "{err}"
    );
    assert!(common::namespaces_with_prefix(&format!("{name}-")).is_empty());
}

/// What a weak container looks like, in a private mount namespace that dies with the command:
/// /proc/sys read-only, /run a read-only tmpfs, and a record directory (LAB_RUN_DIR) where
/// nothing can be created. All three are named at once, with exit 3.
#[test]
fn read_only_run_and_proc_sys_are_named_together() {
    if !root_or_skip("read_only_run_and_proc_sys_are_named_together") {
        return;
    }
    let name = unique_name("pkgro");
    let file = common::lab_file("07-small-ports.toml");
    let script = format!(
        "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys \
         && mount -t tmpfs -o ro tmpfs /run && exec \"$0\" up \"$1\" --name {name}"
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            LAB,
        ])
        .arg(&file)
        .env("LAB_RUN_DIR", "/sys/lab-records")
        .output()
        .expect("run unshare");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 things are missing"), "{err}");
    assert!(
        err.contains("/sys/lab-records (from LAB_RUN_DIR) cannot be created"),
        "{err}"
    );
    assert!(
        err.contains("a writable /run/netns") && err.contains("Read-only file system"),
        "{err}"
    );
    assert!(
        err.contains("/proc/sys/net/ipv4/ip_forward cannot be written"),
        "{err}"
    );
    assert!(common::namespaces_with_prefix(&format!("{name}-")).is_empty());
}
