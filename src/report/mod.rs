//! What people read: pictures of labs, predictions, and (later) run reports. Functions return
//! text; only the CLI prints.

pub mod commands;
pub mod docker;
pub mod drawing;
pub mod graph;
pub mod html;
pub mod live;
pub mod nat;
pub mod notice;
pub mod plan;
pub mod plot;
pub mod programs;
pub mod run;
pub mod topology;

/// Whether escape sequences (colour, cursor movement for redrawn bars) may be written to a
/// stream: only to a terminal, and not when `NO_COLOR` is set (<https://no-color.org>) or the
/// terminal is `dumb`.
pub fn ansi_allowed(is_terminal: bool) -> bool {
    ansi_allowed_by(
        is_terminal,
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

/// [`ansi_allowed`] with the environment passed in.
pub fn ansi_allowed_by(
    is_terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    let dumb = term.is_some_and(|t| t == "dumb");
    is_terminal && !no_color && !dumb
}

/// `64512` -> `64,512`: the numbers are the lesson, so make them readable.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text made safe inside HTML or SVG, in an element or a quoted attribute: a lab file's
/// `<script>` is shown, never run.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the workload will ask of the machine, in one paragraph.
pub fn capacity(c: &crate::lab::capacity::Capacity) -> String {
    if c.connections == 0 {
        return String::new();
    }
    let of = |v: Option<u64>, f: fn(u64) -> String| v.map_or("unknown".into(), f);
    let mut out = format!(
        "\nmachine: {} connections need about {} open files ({} free under fs.file-max), {} MiB of \
         kernel memory ({} MiB available), and up to {} conntrack entries in one namespace (limit {})\n",
        count(c.connections),
        count(c.open_files),
        of(c.open_files_free, count),
        count(c.kernel_bytes >> 20),
        of(c.memory_available, |b| count(b >> 20)),
        count(c.conntrack_per_namespace),
        of(c.conntrack_max, count),
    );
    for p in c.problems() {
        out.push_str(&format!("  warning: {p}\n"));
    }
    for p in &c.crowded {
        out.push_str(&format!("  warning: {p}\n"));
    }
    for r in c.raises() {
        out.push_str(&format!(
            "  lab run raises {} from {} to {} for the run (the lab file allows it) and restores \
             it at teardown\n",
            r.limit,
            count(r.current),
            count(r.needed)
        ));
    }
    out
}

/// The translated addresses a container's connections left as, with how many each:
/// "192.168.49.6 (12,000), 192.168.49.7 (3)".
pub fn left_as(c: &crate::nat::view::ContainerChoice) -> String {
    c.observed
        .iter()
        .map(|(a, n)| format!("{a} ({})", count(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn ansi_only_on_a_terminal_without_no_color() {
        use super::ansi_allowed_by as allowed;
        let xterm = Some(OsStr::new("xterm-256color"));
        assert!(allowed(true, None, xterm));
        assert!(allowed(true, None, None));
        assert!(!allowed(false, None, xterm), "a pipe or a file");
        assert!(!allowed(true, Some(OsStr::new("1")), xterm), "NO_COLOR=1");
        assert!(
            allowed(true, Some(OsStr::new("")), xterm),
            "an empty NO_COLOR is unset"
        );
        assert!(!allowed(true, None, Some(OsStr::new("dumb"))));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn thousands() {
        assert_eq!(super::count(0), "0");
        assert_eq!(super::count(999), "999");
        assert_eq!(super::count(64_512), "64,512");
        assert_eq!(super::count(1_000_000), "1,000,000");
    }
}
