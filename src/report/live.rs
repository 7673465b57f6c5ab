//! The live view while connections ramp, on stderr: a bar per client group and the total,
//! redrawn in place on a terminal; plain lines once a second otherwise (CI logs, pipes, and
//! terminals with `NO_COLOR` set or `TERM=dumb`, where no escape sequence is written).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::count;
use crate::workload::outcome::Snapshot;

const BAR: usize = 30;

pub struct Live {
    /// Bars redrawn in place with escape sequences, or plain lines.
    tty: bool,
    drawn: usize,
    last_line: Option<Instant>,
    last_total: (u64, Instant),
    quiet: bool,
}

impl Live {
    /// `terminal`: whether the text goes to a terminal (bars are redrawn there, when
    /// [`ansi_allowed`](super::ansi_allowed)).
    pub fn new(quiet: bool, terminal: bool) -> Self {
        Self {
            tty: super::ansi_allowed(terminal),
            drawn: 0,
            last_line: None,
            last_total: (0, Instant::now()),
            quiet,
        }
    }

    /// What to write on stderr for this snapshot (escape sequences included on a terminal),
    /// or `None` when nothing is due.
    pub fn update(&mut self, s: &Snapshot) -> Option<String> {
        if self.quiet {
            return None;
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last_total.1).as_secs_f64();
        let rate = if dt > 0.0 {
            (s.established.saturating_sub(self.last_total.0) as f64 / dt) as u64
        } else {
            0
        };
        let f = &s.failed;
        let failed = format!(
            "failed {} (no local port {}, timed out {}, refused {}, reset {}, unreachable {})",
            count(f.total()),
            count(f.no_local_port),
            count(f.timed_out),
            count(f.refused),
            count(f.reset),
            count(f.unreachable)
        );
        let mut err = String::new();
        if self.tty {
            self.last_total = (s.established, now);
            if self.drawn > 0 {
                let _ = write!(err, "\x1b[{}A", self.drawn);
            }
            let mut lines = Vec::new();
            for (g, est, asked) in &s.groups {
                lines.push(format!(
                    "  {g:<12} {} {:>9} / {}",
                    bar(*est, *asked),
                    count(*est),
                    count(*asked)
                ));
            }
            lines.push(format!(
                "  {:<12} {} {:>9} / {}  {}/s, in flight {}",
                "total",
                bar(s.established, s.asked),
                count(s.established),
                count(s.asked),
                count(rate),
                count(s.in_flight)
            ));
            lines.push(format!("  {failed}"));
            for l in &lines {
                let _ = writeln!(err, "\x1b[2K{l}");
            }
            self.drawn = lines.len();
        } else if self
            .last_line
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_total = (s.established, now);
            self.last_line = Some(now);
            let _ = writeln!(
                err,
                "t={:.1}s established {} / {}, {}/s, in flight {}, {failed}",
                s.elapsed_ms as f64 / 1000.0,
                count(s.established),
                count(s.asked),
                count(rate),
                count(s.in_flight)
            );
        }
        (!err.is_empty()).then_some(err)
    }
}

fn bar(n: u64, of: u64) -> String {
    let filled = if of == 0 {
        0
    } else {
        ((n as f64 / of as f64) * BAR as f64).round() as usize
    };
    let filled = filled.min(BAR);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR - filled))
}
