//! The live view while connections ramp, on stderr: a bar per client group and the total, and
//! below them the NAT panel, per Docker host: each NAT path's ports in use against its
//! capacity (a bar that fills and says EXHAUSTED at the wall), and the kernel's
//! `insert_failed` and `drop` counting up. Redrawn in place on a terminal, fitted to its width;
//! plain lines once a second otherwise (CI logs, pipes, and terminals with `NO_COLOR` set or
//! `TERM=dumb`, where no escape sequence is written).
//!
//! Ports in use per path come from the clients' own counts, not from the conntrack table: a
//! dump of the table every second would cost seconds of CPU at a million connections. Each
//! container's established connections are added to the path the prediction puts it on (split
//! evenly over the addresses a cloud gateway takes in turn). Every established connection
//! holds one translated port of its path, so the count is a lower bound of the ports in use
//! (connects in flight may hold more) and reaching the capacity proves the path full: at the
//! wall the bar reads 64,512 / 64,512 exactly. The final report reads the table itself, and
//! says where the kernel chose differently from the prediction.

use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::count;
use crate::nat::live::Reading;
use crate::nat::paths::HostPrediction;
use crate::workload::outcome::Snapshot;

/// Size assumed when the terminal does not say.
pub const DEFAULT_WIDTH: usize = 80;
pub const DEFAULT_HEIGHT: usize = 24;
/// A frame taller than the terminal cannot be redrawn in place: the NAT panel then shrinks to
/// a line per host. Below this many rows it is not tried.
const MIN_HEIGHT: usize = 8;
/// Narrowest and widest layouts.
const MIN_WIDTH: usize = 40;
const MAX_WIDTH: usize = 400;
const MIN_BAR: usize = 10;
const MAX_BAR: usize = 100;
/// Group names are cut to this.
const NAME: usize = 12;
/// Paths shown per host; the others are summed up in one line.
pub const SHOWN_PATHS: usize = 6;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

pub struct Live {
    /// Bars redrawn in place with escape sequences, or plain lines.
    tty: bool,
    drawn: usize,
    last_line: Option<Instant>,
    last_total: (u64, Instant),
    quiet: bool,
    width: usize,
    height: usize,
    /// The NAT panel, per Docker host; empty: no panel.
    nat: Vec<PanelHost>,
    routes: Vec<Route>,
}

/// One Docker host's block of the NAT panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelHost {
    pub host: String,
    /// The NAT rule(s) in words: `masquerade to 192.168.49.6`.
    pub nat: String,
    pub paths: Vec<PanelPath>,
    /// The kernel's counters, once read.
    pub counters: Option<Counters>,
    /// The counters and when they were read, for the rates.
    read: Option<(Instant, u64, u64)>,
    /// What the last plain line said: ports per path and the counters.
    said: Option<(Vec<u64>, Option<Counters>)>,
}

/// One NAT path: (translated source, destination), or a VM's block of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelPath {
    /// `192.168.49.6 -> 192.168.49.5:9000`.
    pub label: String,
    /// Ports in use (a lower bound: see the module's comment).
    pub used: u64,
    pub capacity: u64,
}

impl PanelPath {
    pub fn full(&self) -> bool {
        self.capacity > 0 && self.used >= self.capacity
    }
}

/// The namespace's `insert_failed` and `drop`, with their rates over the last two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub insert_failed: u64,
    pub insert_failed_per_s: u64,
    pub drop: u64,
    pub drop_per_s: u64,
}

/// Where one container's connections to one destination are counted: paths of `nat`, by
/// (host, path) index.
#[derive(Debug, Clone)]
struct Route {
    container: String,
    dst: SocketAddrV4,
    to: Vec<(usize, usize)>,
}

impl Live {
    /// `terminal`: whether the text goes to a terminal (bars are redrawn there, when
    /// [`ansi_allowed`](super::ansi_allowed)).
    pub fn new(quiet: bool, terminal: bool) -> Self {
        Self::with_ansi(quiet, super::ansi_allowed(terminal))
    }

    /// As [`Live::new`], with escape sequences allowed or not.
    pub fn with_ansi(quiet: bool, ansi: bool) -> Self {
        Self {
            tty: ansi,
            drawn: 0,
            last_line: None,
            last_total: (0, Instant::now()),
            quiet,
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            nat: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds the NAT panel: a block per Docker host of `prediction` that translates, a path
    /// per (translated source, destination) it predicts (networks of one host that translate
    /// to one address share the path, as they share its ports).
    pub fn with_nat(mut self, prediction: &[HostPrediction]) -> Self {
        let mut keys: Vec<Vec<(std::net::Ipv4Addr, SocketAddrV4, Option<u16>)>> = Vec::new();
        for h in prediction {
            let hi = match self.nat.iter().position(|p| p.host == h.name) {
                Some(i) => i,
                None => {
                    self.nat.push(PanelHost {
                        host: h.name.clone(),
                        nat: String::new(),
                        paths: Vec::new(),
                        counters: None,
                        read: None,
                        said: None,
                    });
                    keys.push(Vec::new());
                    self.nat.len() - 1
                }
            };
            let untranslated = |a| h.prediction.flows.iter().any(|f| f.src == a);
            let mut translates = false;
            for p in &h.prediction.paths {
                // A container's own address as the source: no NAT on that path.
                if untranslated(p.translated) {
                    continue;
                }
                translates = true;
                let key = (p.translated, p.dst, p.vm_ports.map(|b| b.first));
                match keys[hi].iter().position(|k| *k == key) {
                    Some(i) => {
                        let path = &mut self.nat[hi].paths[i];
                        path.capacity = path.capacity.min(u64::from(p.capacity));
                    }
                    None => {
                        keys[hi].push(key);
                        let source = match p.vm_ports {
                            Some(b) => format!("{}:{}-{}", p.translated, b.first, b.last),
                            None => p.translated.to_string(),
                        };
                        self.nat[hi].paths.push(PanelPath {
                            label: format!("{source} -> {}", p.dst),
                            used: 0,
                            capacity: u64::from(p.capacity),
                        });
                    }
                }
            }
            if translates {
                let nat = h.nat.to_string();
                let host = &mut self.nat[hi];
                if !host.nat.split("; ").any(|n| n == nat) {
                    if !host.nat.is_empty() {
                        host.nat.push_str("; ");
                    }
                    host.nat.push_str(&nat);
                }
            }
            for f in &h.prediction.flows {
                let addresses = if f.in_turn.is_empty() {
                    vec![f.translated]
                } else {
                    f.in_turn.clone()
                };
                let to: Vec<(usize, usize)> = addresses
                    .iter()
                    .filter_map(|&a| {
                        let key = (a, f.dst, f.vm_ports.map(|b| b.first));
                        keys[hi].iter().position(|k| *k == key).map(|pi| (hi, pi))
                    })
                    .collect();
                if !to.is_empty() {
                    self.routes.push(Route {
                        container: f.container.clone(),
                        dst: f.dst,
                        to,
                    });
                }
            }
        }
        // Hosts whose every path is untranslated have no NAT to show.
        let (nat, keep): (Vec<_>, Vec<_>) = self
            .nat
            .drain(..)
            .enumerate()
            .map(|(i, h)| (h, i))
            .filter(|(h, _)| !h.paths.is_empty())
            .unzip();
        for r in &mut self.routes {
            r.to =
                r.to.iter()
                    .filter_map(|&(h, p)| keep.iter().position(|&k| k == h).map(|h| (h, p)))
                    .collect();
        }
        self.routes.retain(|r| !r.to.is_empty());
        self.nat = nat;
        self
    }

    /// The terminal's size, columns and rows (`None`: not known, 80 x 24 is assumed).
    pub fn set_size(&mut self, size: Option<(u16, u16)>) {
        let (columns, rows) = size.map_or((DEFAULT_WIDTH, DEFAULT_HEIGHT), |(c, r)| {
            (usize::from(c), usize::from(r))
        });
        self.width = columns.clamp(MIN_WIDTH, MAX_WIDTH);
        self.height = rows.max(MIN_HEIGHT);
    }

    /// Whether there is a NAT panel (a Docker host that translates).
    pub fn has_nat(&self) -> bool {
        !self.nat.is_empty()
    }

    /// Takes in a reading of the Docker hosts' conntrack counters.
    pub fn nat_reading(&mut self, r: &Reading) {
        for (name, stats) in &r.hosts {
            let Some(host) = self.nat.iter_mut().find(|h| &h.host == name) else {
                continue;
            };
            let Some(s) = stats else {
                continue;
            };
            let per_s = |now: u64, then: u64, dt: f64| {
                if dt > 0.0 {
                    (now.saturating_sub(then) as f64 / dt).round() as u64
                } else {
                    0
                }
            };
            let (insert_failed_per_s, drop_per_s) = match host.read {
                Some((at, i, d)) => {
                    let dt = r.at.saturating_duration_since(at).as_secs_f64();
                    (per_s(s.insert_failed, i, dt), per_s(s.drop, d, dt))
                }
                None => (0, 0),
            };
            host.read = Some((r.at, s.insert_failed, s.drop));
            host.counters = Some(Counters {
                insert_failed: s.insert_failed,
                insert_failed_per_s,
                drop: s.drop,
                drop_per_s,
            });
        }
    }

    /// What to write on stderr for this snapshot (escape sequences included on a terminal),
    /// or `None` when nothing is due.
    pub fn update(&mut self, s: &Snapshot) -> Option<String> {
        if self.quiet {
            return None;
        }
        self.count_paths(s);
        let now = Instant::now();
        let dt = now.duration_since(self.last_total.1).as_secs_f64();
        let rate = if dt > 0.0 {
            (s.established.saturating_sub(self.last_total.0) as f64 / dt) as u64
        } else {
            0
        };
        let mut err = String::new();
        if self.tty {
            self.last_total = (s.established, now);
            if self.drawn > 0 {
                let _ = write!(err, "\x1b[{}A", self.drawn);
            }
            let lines = frame(s, rate, &self.nat, (self.width, self.height), true);
            for l in &lines {
                let _ = writeln!(err, "\x1b[2K{l}");
            }
            // Whatever an earlier, longer frame left below.
            err.push_str("\x1b[J");
            self.drawn = lines.len();
        } else if self
            .last_line
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_total = (s.established, now);
            self.last_line = Some(now);
            let f = &s.failed;
            let t = s.elapsed_ms as f64 / 1000.0;
            let _ = writeln!(
                err,
                "t={t:.1}s established {} / {}, {}/s, in flight {}, failed {} (no local port {}, timed out {}, refused {}, reset {}, unreachable {})",
                count(s.established),
                count(s.asked),
                count(rate),
                count(s.in_flight),
                count(f.total()),
                count(f.no_local_port),
                count(f.timed_out),
                count(f.refused),
                count(f.reset),
                count(f.unreachable)
            );
            for h in &mut self.nat {
                if let Some(line) = plain_nat_line(t, h) {
                    let _ = writeln!(err, "{line}");
                }
            }
        }
        (!err.is_empty()).then_some(err)
    }

    /// Each path's ports in use from the clients' counts (see the module's comment).
    fn count_paths(&mut self, s: &Snapshot) {
        for h in &mut self.nat {
            for p in &mut h.paths {
                p.used = 0;
            }
        }
        for c in &s.clients {
            let Some(r) = self
                .routes
                .iter()
                .find(|r| r.container == c.container && r.dst == c.target)
            else {
                continue;
            };
            let n = r.to.len() as u64;
            for (i, &(h, p)) in r.to.iter().enumerate() {
                // Split evenly, the remainder to the first addresses.
                let share = c.established / n + u64::from((i as u64) < c.established % n);
                if let Some(path) = self.nat.get_mut(h).and_then(|h| h.paths.get_mut(p)) {
                    path.used += share;
                }
            }
        }
        for h in &mut self.nat {
            for p in &mut h.paths {
                // Only a wrong prediction could count more than a path holds.
                p.used = p.used.min(p.capacity);
            }
        }
    }
}

/// The terminal frame: group bars, the total, connects in flight and failures, then the NAT
/// panel; every line at most `width` columns (not counting escape sequences, written only
/// when `colour`), and when the terminal has `height` rows, at most `height - 1` lines for the
/// NAT panel to be redrawn in place (a line per host, if its blocks do not fit).
pub fn frame(
    s: &Snapshot,
    rate: u64,
    nat: &[PanelHost],
    (width, height): (usize, usize),
    colour: bool,
) -> Vec<String> {
    let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
    let mut lines = Vec::new();
    // The widest count of a column: the groups' and the total's.
    let widest = |of: fn(&(String, u64, u64)) -> u64, total: u64| {
        s.groups
            .iter()
            .map(|g| count(of(g)).len())
            .chain([count(total).len()])
            .max()
            .unwrap_or(1)
    };
    let nw = widest(|g| g.1, s.established);
    let aw = widest(|g| g.2, s.asked);
    let rate_text = format!("  {}/s", count(rate));
    // "  name         [bar] n / asked  rate/s"
    let fixed = 2 + NAME + 1 + 2 + 1 + nw + 3 + aw + rate_text.len().max(11);
    let bw = bar_width(width, fixed);
    let group_line = |name: &str, n: u64, of: u64| {
        let name: String = name.chars().take(NAME).collect();
        format!(
            "  {name:<NAME$} [{}] {:>nw$} / {:<aw$}",
            bar(n, of, bw, None),
            count(n),
            count(of)
        )
    };
    for (g, est, asked) in &s.groups {
        lines.push(group_line(g, *est, *asked));
    }
    lines.push(format!(
        "{}{rate_text}",
        group_line("total", s.established, s.asked)
    ));
    lines.push(fit(
        &format!(
            "  in flight {}, failed {}",
            count(s.in_flight),
            failures(&s.failed)
        ),
        width,
    ));
    let blocks: Vec<String> = nat
        .iter()
        .flat_map(|h| host_block(h, width, colour))
        .collect();
    let room = height.max(MIN_HEIGHT) - 1;
    if lines.len() + blocks.len() <= room {
        lines.extend(blocks);
        return lines;
    }
    let room = room.saturating_sub(lines.len()).max(1);
    let fits = if nat.len() <= room {
        nat.len()
    } else {
        room - 1
    };
    for h in &nat[..fits] {
        lines.push(host_line(h, width, colour));
    }
    if fits < nat.len() {
        lines.push(fit(
            &format!("  + {} more Docker hosts", count((nat.len() - fits) as u64)),
            width,
        ));
    }
    lines
}

/// A host in one line, when the blocks do not fit the terminal: its fullest path and its
/// counters.
fn host_line(h: &PanelHost, width: usize, colour: bool) -> String {
    let fullest = busiest_of(&h.paths, &(0..h.paths.len()).collect::<Vec<_>>(), 1);
    let full = h.paths.iter().filter(|p| p.full()).count();
    let mut line = format!(
        "  host {}: {} NAT paths",
        h.host,
        count(h.paths.len() as u64)
    );
    if let Some(p) = fullest.first().map(|&i| &h.paths[i]) {
        let _ = write!(line, ", fullest {} / {}", count(p.used), count(p.capacity));
    }
    if full > 0 {
        let _ = write!(line, ", {} EXHAUSTED", count(full as u64));
    }
    if let Some(c) = &h.counters {
        let _ = write!(
            line,
            "; insert_failed +{}/s ({}) drop +{}/s ({})",
            count(c.insert_failed_per_s),
            count(c.insert_failed),
            count(c.drop_per_s),
            count(c.drop)
        );
    }
    let line = fit(&line, width);
    if colour && full > 0 {
        // The word itself is never cut: when it fits, colour it.
        line.replacen("EXHAUSTED", &format!("{RED}EXHAUSTED{RESET}"), 1)
    } else {
        line
    }
}

/// `10,488 (timed out 10,488)`: the total and its causes that happened.
fn failures(f: &crate::workload::protocol::Failures) -> String {
    let causes: Vec<String> = [
        ("no local port", f.no_local_port),
        ("timed out", f.timed_out),
        ("refused", f.refused),
        ("reset", f.reset),
        ("unreachable", f.unreachable),
        ("other", f.other),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} {}", count(n)))
    .collect();
    if causes.is_empty() {
        count(f.total())
    } else {
        format!("{} ({})", count(f.total()), causes.join(", "))
    }
}

/// One host's block: its NAT, the busiest paths, and the kernel's counters.
pub fn host_block(h: &PanelHost, width: usize, colour: bool) -> Vec<String> {
    let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
    let mut lines = vec![fit(&format!("  host {}  NAT {}", h.host, h.nat), width)];
    let shown = busiest(&h.paths);
    let uw = shown
        .iter()
        .map(|&i| count(h.paths[i].used).len())
        .max()
        .unwrap_or(1);
    let cw = shown
        .iter()
        .map(|&i| count(h.paths[i].capacity).len())
        .max()
        .unwrap_or(1);
    // "    label [bar] used / capacity EXHAUSTED"
    let numbers = 1 + 2 + 1 + uw + 3 + cw + 1 + "EXHAUSTED".len();
    let longest = shown
        .iter()
        .map(|&i| h.paths[i].label.len())
        .max()
        .unwrap_or(0);
    let lw = longest.min(width.saturating_sub(4 + numbers + MIN_BAR));
    let bw = bar_width(width, 4 + lw + numbers);
    for &i in &shown {
        let p = &h.paths[i];
        let full = p.full();
        let (fill, status) = match (colour, full) {
            (true, true) => (Some(RED), format!(" {RED}EXHAUSTED{RESET}")),
            (true, false) => (Some(GREEN), String::new()),
            (false, true) => (None, " EXHAUSTED".to_owned()),
            (false, false) => (None, String::new()),
        };
        lines.push(format!(
            "    {:<lw$} [{}] {:>uw$} / {:<cw$}{status}",
            cut(&p.label, lw),
            bar(p.used, p.capacity, bw, fill),
            count(p.used),
            count(p.capacity),
        ));
    }
    let more = h.paths.len() - shown.len();
    if more > 0 {
        let full = (0..h.paths.len())
            .filter(|i| !shown.contains(i) && h.paths[*i].full())
            .count();
        let full = match full {
            0 => "none full".to_owned(),
            n => format!("{} full", count(n as u64)),
        };
        let paths = if more == 1 { "path" } else { "paths" };
        lines.push(fit(
            &format!("    + {} more {paths}, {full}", count(more as u64)),
            width,
        ));
    }
    lines.push(fit(
        &match &h.counters {
            Some(c) => format!(
                "    insert_failed +{}/s ({})  drop +{}/s ({})",
                count(c.insert_failed_per_s),
                count(c.insert_failed),
                count(c.drop_per_s),
                count(c.drop)
            ),
            None => "    insert_failed, drop: reading the kernel's counters".to_owned(),
        },
        width,
    ));
    lines
}

/// The plain line of a host, once a second: the paths whose count changed or that are full,
/// and the counters; `None` when nothing changed and no path is full.
fn plain_nat_line(t: f64, h: &mut PanelHost) -> Option<String> {
    let used: Vec<u64> = h.paths.iter().map(|p| p.used).collect();
    let before = h.said.as_ref();
    let changed: Vec<usize> = (0..h.paths.len())
        .filter(|&i| h.paths[i].full() || before.is_none_or(|(u, _)| u.get(i) != Some(&used[i])))
        .collect();
    let counters_moved = before.is_none_or(|(_, c)| *c != h.counters);
    if changed.is_empty() && !counters_moved {
        return None;
    }
    let mut line = format!("t={t:.1}s nat {}", h.host);
    let listed: Vec<usize> = busiest_of(&h.paths, &changed, SHOWN_PATHS);
    for &i in &listed {
        let p = &h.paths[i];
        let _ = write!(
            line,
            " {} {}/{}{},",
            p.label.replace(" -> ", "->"),
            count(p.used),
            count(p.capacity),
            if p.full() { " EXHAUSTED" } else { "" }
        );
    }
    if changed.len() > listed.len() {
        let _ = write!(line, " + {} more,", changed.len() - listed.len());
    }
    match &h.counters {
        Some(c) => {
            let _ = write!(
                line,
                " insert_failed {} (+{}/s) drop {} (+{}/s)",
                count(c.insert_failed),
                count(c.insert_failed_per_s),
                count(c.drop),
                count(c.drop_per_s)
            );
        }
        None => {
            if line.ends_with(',') {
                line.pop();
            }
        }
    }
    h.said = Some((used, h.counters));
    Some(line)
}

/// The paths to show: all when few, else the [`SHOWN_PATHS`] fullest, in their own order.
fn busiest(paths: &[PanelPath]) -> Vec<usize> {
    busiest_of(paths, &(0..paths.len()).collect::<Vec<_>>(), SHOWN_PATHS)
}

/// The `most` fullest of `among`, in their own order.
fn busiest_of(paths: &[PanelPath], among: &[usize], most: usize) -> Vec<usize> {
    if among.len() <= most {
        return among.to_vec();
    }
    let mut by_fill = among.to_vec();
    // Fullest first (used / capacity, compared without division), then most used.
    by_fill.sort_by(|&a, &b| {
        let (pa, pb) = (&paths[a], &paths[b]);
        (u128::from(pb.used) * u128::from(pa.capacity.max(1)))
            .cmp(&(u128::from(pa.used) * u128::from(pb.capacity.max(1))))
            .then(pb.used.cmp(&pa.used))
            .then(a.cmp(&b))
    });
    by_fill.truncate(most);
    by_fill.sort_unstable();
    by_fill
}

/// A bar's width: what `width` leaves beside `fixed` columns, within bounds.
fn bar_width(width: usize, fixed: usize) -> usize {
    width.saturating_sub(fixed).clamp(MIN_BAR, MAX_BAR)
}

fn bar(n: u64, of: u64, width: usize, colour: Option<&str>) -> String {
    let filled = if of == 0 {
        0
    } else {
        // Full only when it is: 64,511 of 64,512 leaves its last cell empty.
        let f = ((n as f64 / of as f64) * width as f64).round() as usize;
        if n < of { f.min(width - 1) } else { f }
    };
    let filled = filled.min(width);
    let hashes = "#".repeat(filled);
    let dots = ".".repeat(width - filled);
    match colour {
        Some(c) if filled > 0 => format!("{c}{hashes}{RESET}{dots}"),
        _ => format!("{hashes}{dots}"),
    }
}

/// `text` in at most `width` columns, `..` marking a cut (lab's text is ASCII but for names,
/// counted in characters).
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(2)).collect();
    s.push_str("..");
    s
}

/// As [`fit`], for a column.
fn cut(text: &str, width: usize) -> String {
    fit(text, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LoadOptions, Source, load};
    use crate::nat::conntrack::Stats;
    use crate::workload::outcome::ClientResult;
    use crate::workload::protocol::Failures;

    fn prediction(text: &str) -> Vec<HostPrediction> {
        let plan = load(&Source::new("t.toml", text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .expect("the lab loads")
            .plan;
        crate::nat::paths::predict_lab(&plan)
    }

    /// Lab 07: two containers, one NAT path of 300 ports.
    fn small() -> Vec<HostPrediction> {
        prediction(include_str!("../../labs/07-small-ports.toml"))
    }

    /// One host, eight containers, each to a server address of its own: eight paths.
    fn eight_paths() -> Vec<HostPrediction> {
        let targets: Vec<String> = (0..8)
            .map(|i| format!("\"192.168.49.{}:9000\"", 10 + i))
            .collect();
        let addresses: Vec<String> = (0..8)
            .map(|i| format!("\"192.168.49.{}\"", 10 + i))
            .collect();
        prediction(&format!(
            r#"
name = "eight"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.client.docker]
[hosts.server-host]
lan = "lan"
addresses = [{}]
[containers.c]
host = "client"
replicas = 8
[servers.srv]
host = "server-host"
port = 9000
[clients.load]
containers = ["c"]
connect = [{}]
connections = 100
"#,
            addresses.join(", "),
            targets.join(", ")
        ))
    }

    fn client(container: &str, target: &str, asked: u64, established: u64) -> ClientResult {
        ClientResult {
            group: "load".into(),
            container: container.into(),
            target: target.parse().expect("target"),
            asked,
            established,
            failed: Failures::default(),
            processes: 1,
            detail: None,
            program: None,
            runs_as: None,
        }
    }

    fn snapshot(clients: Vec<ClientResult>, timed_out: u64, in_flight: u64) -> Snapshot {
        let established = clients.iter().map(|c| c.established).sum();
        let asked = clients.iter().map(|c| c.asked).sum();
        Snapshot {
            elapsed_ms: 3200,
            clients,
            servers: Vec::new(),
            established,
            asked,
            failed: Failures {
                timed_out,
                ..Failures::default()
            },
            in_flight,
            groups: vec![("load".into(), established, asked)],
            agents_rss_bytes: 0,
            agents_pss_bytes: 0,
            agents: 2,
            dead_agents: Vec::new(),
        }
    }

    /// Lab 07 at its wall: 300 of 500 established, 200 timed out.
    fn at_the_wall(c1: u64, c2: u64) -> Snapshot {
        snapshot(
            vec![
                client("c1", "192.168.49.5:9000", 250, c1),
                client("c2", "192.168.49.5:9000", 250, c2),
            ],
            500 - c1 - c2,
            0,
        )
    }

    fn reading(at: Instant, host: &str, insert_failed: u64) -> Reading {
        Reading {
            at,
            hosts: vec![(
                host.to_owned(),
                Some(Stats {
                    insert_failed,
                    drop: insert_failed,
                    ..Stats::default()
                }),
            )],
            took: Duration::from_micros(50),
        }
    }

    /// The text a viewer sees: escape sequences left out.
    fn visible(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn terminal_lines(live: &mut Live, s: &Snapshot) -> Vec<String> {
        let text = live.update(s).expect("a frame");
        assert!(text.ends_with("\x1b[J"), "clears below the frame: {text:?}");
        text.lines()
            .map(visible)
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn the_wall_at_80_columns_reads_full_and_exhausted() {
        let mut live = Live::with_ansi(false, true).with_nat(&small());
        live.set_size(Some((80, 40)));
        let t0 = Instant::now();
        live.nat_reading(&reading(t0, "client-host", 400));
        live.nat_reading(&reading(t0 + Duration::from_secs(2), "client-host", 800));
        let lines = terminal_lines(&mut live, &at_the_wall(162, 138));
        let text = lines.join("\n");
        for l in &lines {
            assert!(l.chars().count() <= 80, "longer than 80: {l:?}\n{text}");
        }
        let path = lines
            .iter()
            .find(|l| l.contains("192.168.49.6 -> 192.168.49.5:9000"))
            .unwrap_or_else(|| panic!("no path line:\n{text}"));
        assert!(path.contains("300 / 300"), "{text}");
        assert!(path.trim_end().ends_with("EXHAUSTED"), "{text}");
        assert!(
            path.contains(&format!("[{}]", "#".repeat(bar_len(path)))),
            "{text}"
        );
        assert!(
            text.contains("host client-host  NAT masquerade to 192.168.49.6 ports 40000-40299"),
            "{text}"
        );
        assert!(
            text.contains("insert_failed +200/s (800)  drop +200/s (800)"),
            "{text}"
        );
        assert!(
            text.contains("in flight 0, failed 200 (timed out 200)"),
            "{text}"
        );
        // The counters once, failures once.
        assert_eq!(text.matches("insert_failed").count(), 1, "{text}");
        assert_eq!(text.matches("failed 200").count(), 1, "{text}");
    }

    fn bar_len(line: &str) -> usize {
        let open = line.find('[').expect("a bar");
        let close = line[open..].find(']').expect("a bar's end");
        close - 1
    }

    #[test]
    fn before_the_wall_the_bar_is_not_full_and_says_nothing() {
        let mut live = Live::with_ansi(false, true).with_nat(&small());
        live.set_size(Some((80, 40)));
        let lines = terminal_lines(&mut live, &at_the_wall(150, 149));
        let text = lines.join("\n");
        let path = lines
            .iter()
            .find(|l| l.contains("-> 192.168.49.5:9000"))
            .expect("a path line");
        assert!(path.contains("299 / 300"), "{text}");
        assert!(!text.contains("EXHAUSTED"), "{text}");
        assert!(path.contains('.'), "299 of 300 leaves a cell empty: {path}");
        assert!(
            text.contains("insert_failed, drop: reading the kernel's counters"),
            "{text}"
        );
    }

    #[test]
    fn a_projector_gets_longer_bars_and_colour_only_when_allowed() {
        let wall = at_the_wall(162, 138);
        let mut narrow = Live::with_ansi(false, true).with_nat(&small());
        narrow.set_size(Some((80, 40)));
        let mut wide = Live::with_ansi(false, true).with_nat(&small());
        wide.set_size(Some((160, 50)));
        let raw = wide.update(&wall).expect("a frame");
        assert!(raw.contains(&format!("{RED}EXHAUSTED{RESET}")), "{raw:?}");
        assert!(
            raw.contains(&format!("[{RED}#")),
            "a full path's bar is red: {raw:?}"
        );
        let wide: Vec<String> = raw.lines().map(visible).collect();
        let narrow = terminal_lines(&mut narrow, &wall);
        for l in &wide {
            assert!(l.chars().count() <= 160, "{l:?}");
        }
        let path = |lines: &[String]| {
            lines
                .iter()
                .find(|l| l.contains("-> 192.168.49.5:9000"))
                .map(|l| bar_len(l))
                .expect("a path line")
        };
        assert!(path(&wide) >= path(&narrow) + 60, "{wide:#?}\n{narrow:#?}");
        // Not a terminal (or NO_COLOR): no escape byte at all.
        let mut plain = Live::with_ansi(false, false).with_nat(&small());
        let text = plain.update(&wall).expect("a line");
        assert!(!text.contains('\x1b'), "{text:?}");
    }

    #[test]
    fn many_paths_show_the_fullest_and_sum_up_the_rest() {
        let mut live = Live::with_ansi(false, true).with_nat(&eight_paths());
        live.set_size(Some((80, 40)));
        // Names longer than a line are cut, marked.
        live.nat[0].host = "a-client-host-with-a-name-longer-than-the-line-".repeat(2);
        live.nat[0].paths[7].label = format!("{}:1024-2047 -> 192.168.49.17:9000", "x".repeat(40));
        // Container i holds 10 * (i + 1) connections of its path's 64,512 ports.
        let clients: Vec<ClientResult> = (0..8)
            .map(|i| {
                client(
                    &format!("c{}", i + 1),
                    &format!("192.168.49.{}:9000", 10 + i),
                    100,
                    10 * (i + 1),
                )
            })
            .collect();
        let lines = terminal_lines(&mut live, &snapshot(clients, 0, 5));
        let text = lines.join("\n");
        for l in &lines {
            assert!(l.chars().count() <= 80, "longer than 80: {l:?}\n{text}");
        }
        let paths: Vec<&String> = lines.iter().filter(|l| l.contains(" / 64,512")).collect();
        assert_eq!(paths.len(), SHOWN_PATHS, "{text}");
        // The two emptiest (c1's and c2's) are left out.
        assert!(!text.contains("-> 192.168.49.10:9000"), "{text}");
        assert!(!text.contains("-> 192.168.49.11:9000"), "{text}");
        let cut = lines
            .iter()
            .find(|l| l.contains("xxxx"))
            .unwrap_or_else(|| panic!("the long label's path:\n{text}"));
        assert!(cut.contains(".. ["), "{cut}");
        assert!(cut.contains("80 / 64,512"), "{cut}");
        assert!(text.contains("+ 2 more paths, none full"), "{text}");
        let header = lines
            .iter()
            .find(|l| l.starts_with("  host "))
            .expect("a host line");
        assert!(header.ends_with(".."), "{header}");
        assert_eq!(header.chars().count(), 80, "{header}");
    }

    #[test]
    fn a_short_terminal_gets_a_line_per_host() {
        // 3 lines of bars and 9 of the host's block do not fit 10 rows.
        let mut live = Live::with_ansi(false, true).with_nat(&eight_paths());
        live.set_size(Some((80, 10)));
        live.nat[0].paths[2].used = 0;
        let clients: Vec<ClientResult> = (0..8)
            .map(|i| {
                client(
                    &format!("c{}", i + 1),
                    &format!("192.168.49.{}:9000", 10 + i),
                    100,
                    50,
                )
            })
            .collect();
        let lines = terminal_lines(&mut live, &snapshot(clients, 0, 5));
        let text = lines.join("\n");
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[3], "  host client: 8 NAT paths, fullest 50 / 64,512",
            "{text}"
        );
    }

    #[test]
    fn plain_lines_say_the_full_path_and_the_counters_without_escapes() {
        let mut live = Live::with_ansi(false, false).with_nat(&small());
        let t0 = Instant::now();
        live.nat_reading(&reading(t0, "client-host", 1000));
        live.nat_reading(&reading(
            t0 + Duration::from_millis(500),
            "client-host",
            1234,
        ));
        let text = live.update(&at_the_wall(162, 138)).expect("lines");
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(
            text.contains(
                "t=3.2s nat client-host 192.168.49.6->192.168.49.5:9000 300/300 EXHAUSTED, \
                 insert_failed 1,234 (+468/s) drop 1,234 (+468/s)"
            ),
            "{text}"
        );
        assert!(text.starts_with("t=3.2s established 300 / 500"), "{text}");
    }

    #[test]
    fn untranslated_hosts_have_no_panel() {
        let same_host = prediction(include_str!("../../labs/01-same-host.toml"));
        assert!(!Live::with_ansi(false, true).with_nat(&same_host).has_nat());
        assert!(Live::with_ansi(false, true).with_nat(&small()).has_nat());
    }
}
