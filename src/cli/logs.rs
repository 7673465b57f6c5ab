//! `lab logs LAB [NODE]`: the logs of a running lab's own programs (what they wrote on stdout
//! and stderr), each under a `==> FILE <==` header as `tail` prints several files.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::error::invalid;
use crate::lab::state::Record;
use crate::workload::program;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name (see `lab list`).
    pub lab: String,
    /// Only the programs on this node: a host (its servers) or a container (its clients).
    pub node: Option<String>,
    /// Only the last N lines of each log. Default: all of it.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

pub fn run(args: Args) -> Result<()> {
    let record = Record::open(&args.lab)?;
    let plan = &record.state.plan;
    if let Some(node) = &args.node {
        let nodes = record.state.nodes();
        if !nodes.iter().any(|n| &n.name == node && n.kind != "lan") {
            let names: Vec<&str> = nodes
                .iter()
                .filter(|n| n.kind != "lan")
                .map(|n| n.name.as_str())
                .collect();
            return Err(invalid(format!(
                "lab {} has no host or container {node}; its nodes are: {}",
                args.lab,
                names.join(", ")
            )));
        }
    }
    let expected = program::logs_of(plan, args.node.as_deref());
    if expected.is_empty() {
        match &args.node {
            Some(node) => outln!(
                "{node} in lab {} runs no programs of yours (no logs)",
                args.lab
            ),
            None => outln!("lab {} runs no programs of yours (no logs)", args.lab),
        }
        return Ok(());
    }
    // Only read: `lab logs` never creates the directory (`lab run` does, under the record).
    let dir = crate::lab::state::run_dir()
        .join(&record.state.lab)
        .join("logs");
    let mut files: Vec<String> = expected
        .into_iter()
        .filter(|n| dir.join(n).is_file())
        .collect();
    if args.node.is_none() && dir.is_dir() {
        // Any other log in the directory too, after the planned ones.
        let mut others: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".log") && !files.contains(n))
            .collect();
        others.sort();
        files.extend(others);
    }
    if files.is_empty() {
        outln!(
            "lab {} has no logs yet: its programs have not been started (`lab run` starts them)",
            args.lab
        );
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0;
    for name in &files {
        let path = dir.join(name);
        let sep = if printed == 0 { "" } else { "\n" };
        let bytes = match read_log(&path, args.tail) {
            Ok(b) => b,
            // Gone meanwhile: the lab is being torn down.
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let ended = bytes.is_empty() || bytes.ends_with(b"\n");
        let written = writeln!(stdout, "{sep}==> {} <==", path.display())
            .and_then(|()| stdout.write_all(&bytes))
            .and_then(|()| if ended { Ok(()) } else { writeln!(stdout) });
        if written.is_err() {
            // The reader went away (`| head`): nothing more to say.
            return Ok(());
        }
        printed += 1;
    }
    let _ = stdout.flush();
    Ok(())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
}

/// A log's bytes, or its last `tail` lines; never through a symlink.
fn read_log(path: &Path, tail: Option<usize>) -> Result<Vec<u8>> {
    let mut f: File = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("read {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let Some(n) = tail else {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .with_context(|| format!("read {}", path.display()))?;
        return Ok(bytes);
    };
    // Read backwards from the end, a growing chunk at a time, until it holds n lines.
    let mut chunk: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(chunk);
        f.seek(SeekFrom::Start(start))
            .with_context(|| format!("read {}", path.display()))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .with_context(|| format!("read {}", path.display()))?;
        let from = last_lines(&bytes, n);
        // A cut first line does not count, unless the file starts there.
        if start == 0 || from > 0 {
            return Ok(bytes[from..].to_vec());
        }
        chunk = chunk.saturating_mul(4);
    }
}

/// Where the last `n` lines of `bytes` start (a last line without its newline counts); 0
/// when it holds no more than `n` lines, or none is complete.
fn last_lines(bytes: &[u8], n: usize) -> usize {
    if n == 0 {
        return bytes.len();
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_start_after_the_right_newline() {
        let t = b"a\nb\nc\n";
        assert_eq!(&t[last_lines(t, 1)..], b"c\n");
        assert_eq!(&t[last_lines(t, 2)..], b"b\nc\n");
        assert_eq!(&t[last_lines(t, 3)..], t);
        assert_eq!(&t[last_lines(t, 9)..], t);
        assert_eq!(&t[last_lines(t, 0)..], b"");
        let open = b"a\nb\nc";
        assert_eq!(&open[last_lines(open, 1)..], b"c");
        assert_eq!(&open[last_lines(open, 2)..], b"b\nc");
        assert_eq!(last_lines(b"", 3), 0);
    }

    #[test]
    fn a_long_log_is_tailed_from_its_end() {
        let path = std::env::temp_dir().join(format!("lab-logs-tail-{}", std::process::id()));
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            read_log(&path, Some(2)).unwrap(),
            b"line 99998\nline 99999\n"
        );
        assert_eq!(read_log(&path, None).unwrap(), text.as_bytes());
        assert_eq!(read_log(&path, Some(200_000)).unwrap(), text.as_bytes());
        std::fs::remove_file(&path).unwrap();
        assert!(is_not_found(&read_log(&path, None).unwrap_err()));
    }
}
