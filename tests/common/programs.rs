//! The test programs of tests/programs/ (a Go module, standard library only): a server and a
//! load client like the article's, for tests that run the user's own programs in a lab.
//!
//! [`go_programs`] builds both once per test process into `target/test-programs/bin/<pid>/`,
//! with Go's cache and module path in `target/test-programs/` (nothing is written to `$HOME`), and without the network.
//! `./lab.sh test` installs Go (Debian's `golang-go`); without it the helper says so, and the
//! test calls [`skip`](super::skip) with the reason (which fails under CI).
//!
//! ```ignore
//! let progs = match common::programs::go_programs() {
//!     Ok(p) => p,
//!     Err(why) => return common::skip("my_test", &why),
//! };
//! Command::new("ip").args(["netns", "exec", ns]).arg(&progs.server).args(["-l", "0.0.0.0:9000"]);
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built programs, by absolute path.
#[derive(Clone, Debug)]
pub struct GoPrograms {
    /// `server -l ADDR:PORT`: accepts forever, prints `open N` once a second.
    pub server: PathBuf,
    /// `client -target IP:PORT -n N [-rate R] [-timeout 3s] [-hold D]`: opens N, keeps them.
    pub client: PathBuf,
    /// What `go version` said, e.g. `go version go1.19.8 linux/amd64`.
    pub go_version: String,
}

/// Builds the server and the client (once per test process; later calls return the same).
pub fn go_programs() -> Result<GoPrograms, String> {
    static BUILT: OnceLock<Result<GoPrograms, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

/// The source module: tests/programs/.
pub fn source_dir() -> PathBuf {
    super::repo().join("tests").join("programs")
}

/// `target/test-programs/` of the target directory the tests were built into.
pub fn out_dir() -> PathBuf {
    // CARGO_BIN_EXE_lab is <target>/<profile>/lab: this honours CARGO_TARGET_DIR.
    Path::new(super::LAB)
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("test-programs"))
        .unwrap_or_else(|| super::repo().join("target").join("test-programs"))
}

/// `go` with everything it writes kept under `out`, no network and no cgo.
fn go(out: &Path) -> Command {
    let mut c = Command::new("go");
    c.current_dir(source_dir())
        .env("GOCACHE", out.join("gocache"))
        .env("GOPATH", out.join("gopath"))
        .env("GOTMPDIR", out.join("tmp"))
        .env("GOENV", "off")
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "0");
    c
}

fn build() -> Result<GoPrograms, String> {
    let out = out_dir();
    std::fs::create_dir_all(out.join("tmp"))
        .map_err(|e| format!("create {}: {e}", out.display()))?;
    let version = go(&out).arg("version").output().map_err(|e| {
        format!(
            "cannot run `go` ({e}): install Go to build tests/programs \
             (Debian: apt-get install golang-go; `./lab.sh test` does)"
        )
    })?;
    if !version.status.success() {
        return Err(format!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    let go_version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    // A directory of this test process's own: a binary another test process rebuilt in place
    // would show as "(deleted)" behind the programs running from it (a test that finds them
    // by their path once found one of two), and Go's cache makes the second build cheap.
    let bin = out.join("bin").join(std::process::id().to_string());
    std::fs::create_dir_all(&bin).map_err(|e| format!("create {}: {e}", bin.display()))?;
    let path = |name: &str| -> Result<PathBuf, String> {
        let dest = bin.join(name);
        let partial = bin.join(format!(".{name}"));
        let built = go(&out)
            .args(["build", "-trimpath", "-o"])
            .arg(&partial)
            .arg(format!("./{name}"))
            .output()
            .map_err(|e| format!("run go build: {e}"))?;
        if !built.status.success() {
            let _ = std::fs::remove_file(&partial);
            return Err(format!(
                "`go build ./{name}` in {} failed ({go_version}):\n{}",
                source_dir().display(),
                String::from_utf8_lossy(&built.stderr).trim()
            ));
        }
        std::fs::rename(&partial, &dest)
            .map_err(|e| format!("rename {} to {}: {e}", partial.display(), dest.display()))?;
        Ok(dest)
    };
    Ok(GoPrograms {
        server: path("server")?,
        client: path("client")?,
        go_version,
    })
}

/// `user = "root"` for a lab file whose programs are the test binaries, when a user other than
/// root could not reach them (a clone under a directory of root's alone, such as a CI job's
/// `mktemp -d`), else nothing: programs run as nobody by default, and these tests are about
/// counting, not privileges (tests/privileges.rs is).
pub fn user_line(progs: &GoPrograms) -> &'static str {
    use std::os::unix::fs::PermissionsExt as _;
    let others_may = |p: &Path, bits: u32| {
        std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits)
    };
    let reachable = |bin: &Path| {
        others_may(bin, 0o005) && bin.ancestors().skip(1).all(|d| others_may(d, 0o001))
    };
    if reachable(&progs.server) && reachable(&progs.client) {
        ""
    } else {
        "user = \"root\"\n"
    }
}
