//! The live view's NAT panel as a person sees it: `lab run` of lab 07 (a 300-port NAT path,
//! 500 connections) on a real terminal (a detached tmux session of a fixed size, on a tmux
//! server of this test's own socket), the screen captured until it shows the wall: the path at
//! 300 / 300 and EXHAUSTED, the kernel's insert_failed above 0, every line of the view within
//! the terminal's width. And without a terminal: plain lines with the NAT line, no escape byte;
//! `--no-nat-panel` leaves it out.
//!
//! Run as root (skipped otherwise, or without tmux).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const PATH: &str = "192.168.49.6 -> 192.168.49.5:9000";

/// A tmux server of this test's own (`-L SOCKET`), killed with what runs in it when dropped;
/// then the lab is taken down if it is still up.
struct Tmux {
    socket: String,
    lab: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The screen as it is now: wrapped lines joined (`-J`) so that a line longer than the
    /// terminal shows as one; with the escape sequences of its colours when `escapes`.
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-J", "-t", "view"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.cmd(&args).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let socket = String::from_utf8_lossy(
            &self
                .cmd(&["display-message", "-p", "#{socket_path}"])
                .stdout,
        )
        .trim()
        .to_owned();
        let _ = self.cmd(&["kill-server"]);
        // The server leaves its socket file behind.
        if socket.ends_with(&self.socket) {
            let _ = std::fs::remove_file(&socket);
        }
        let _ = lab(&["down", "--force", &self.lab]);
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `lab run FILE --name NAME ARGS` in a detached tmux session of `columns` x `rows`.
fn run_on_a_terminal(name: &str, file: &Path, args: &str, (columns, rows): (u16, u16)) -> Tmux {
    let tmux = Tmux {
        socket: format!("lab-test-{name}"),
        lab: name.to_owned(),
    };
    // The view's colour depends on NO_COLOR, which the test's environment may set: unset.
    let command = format!(
        "env -u NO_COLOR LAB_RUN_DIR={RUN_DIR} {LAB} run {} --name {name} --timeout 50 {args}; \
         echo \"lab exited $?\"; sleep 120",
        file.display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "view",
        "-x",
        &columns.to_string(),
        "-y",
        &rows.to_string(),
        &command,
    ]);
    assert!(out.status.success(), "tmux new-session: {}", text(&out));
    tmux
}

/// The lines of the live view on `screen`: from the first group bar to the last counters.
fn view_lines(screen: &str) -> Vec<&str> {
    let lines: Vec<&str> = screen.lines().collect();
    let Some(first) = lines.iter().position(|l| l.starts_with("  load ")) else {
        return Vec::new();
    };
    let Some(last) = lines.iter().rposition(|l| l.contains("insert_failed")) else {
        return Vec::new();
    };
    if last < first {
        return Vec::new();
    }
    lines[first..=last].to_vec()
}

/// The total in `insert_failed +N/s (TOTAL)`.
fn insert_failed(line: &str) -> Option<u64> {
    let rest = &line[line.find("insert_failed +")?..];
    let open = rest.find('(')?;
    let close = rest.find(')')?;
    rest[open + 1..close].replace(',', "").parse().ok()
}

/// Whether the view on `screen` shows the wall: the path full and EXHAUSTED, insert_failed > 0.
fn shows_the_wall(screen: &str) -> bool {
    let view = view_lines(screen);
    let full = view
        .iter()
        .any(|l| l.contains(PATH) && l.contains("300 / 300") && l.contains("EXHAUSTED"));
    let dropped = view.iter().filter_map(|l| insert_failed(l)).any(|n| n > 0);
    full && dropped
}

/// Polls the screen until it shows the wall (or `limit`): the screen then.
fn wait_for_the_wall(tmux: &Tmux, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let screen = tmux.screen(false);
        if shows_the_wall(&screen) {
            return Some(screen);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits for `lab run` to end on its own and checks that it left nothing.
fn wait_for_the_end(tmux: &Tmux, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut screen = String::new();
    while Instant::now() < deadline {
        screen = tmux.screen(false);
        if screen.contains("lab exited") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        screen.contains("lab exited 0"),
        "lab run did not end well:\n{screen}"
    );
    assert_gone(name);
}

fn on_a_terminal(tag: &str, size: (u16, u16)) {
    let test = format!("live panel at {} columns", size.0);
    if !root_or_skip(&test) {
        return;
    }
    if !have_tmux() {
        skip(&test, "no tmux");
        return;
    }
    let name = unique_name(tag);
    let tmux = run_on_a_terminal(&name, &lab_file("07-small-ports.toml"), "--settle 5s", size);
    let Some(screen) = wait_for_the_wall(&tmux, Duration::from_secs(60)) else {
        panic!(
            "the screen never showed the wall ({PATH} at 300 / 300, EXHAUSTED, insert_failed > 0):\n{}",
            tmux.screen(false)
        );
    };
    let view = view_lines(&screen);
    eprintln!("{test}, the view at the wall:\n{}", view.join("\n"));
    for l in &view {
        assert!(
            l.chars().count() <= usize::from(size.0),
            "a line wider than the terminal ({} columns): {l:?}\n{screen}",
            size.0
        );
    }
    let path = view
        .iter()
        .find(|l| l.contains(PATH))
        .expect("the path's line");
    assert!(path.trim_end().ends_with("300 / 300 EXHAUSTED"), "{path}");
    assert!(
        view.iter()
            .any(|l| l.starts_with("  host client-host  NAT masquerade to 192.168.49.6")),
        "{screen}"
    );
    // Failures by cause and connects in flight, once.
    assert_eq!(
        view.iter().filter(|l| l.contains("in flight")).count(),
        1,
        "{screen}"
    );
    // On a terminal without NO_COLOR, EXHAUSTED is coloured.
    let coloured = tmux.screen(true);
    assert!(
        coloured
            .lines()
            .any(|l| l.contains(PATH) && l.contains("\x1b[") && l.contains("EXHAUSTED")),
        "no colour on the path's line:\n{coloured:?}"
    );
    wait_for_the_end(&tmux, &name);
}

#[test]
fn the_wall_on_a_100_column_terminal() {
    on_a_terminal("lpw", (100, 40));
}

#[test]
fn the_wall_on_an_80_column_terminal() {
    on_a_terminal("lpn", (80, 40));
}

#[test]
fn plain_lines_without_a_terminal_and_no_panel_when_asked() {
    let test = "plain_lines_without_a_terminal_and_no_panel_when_asked";
    if !root_or_skip(test) {
        return;
    }
    let file = lab_file("07-small-ports.toml");
    let name = unique_name("lpp");
    let _guard = LabGuard { name: name.clone() };
    let run = Running::start(&file, &name, &[], None).wait(Duration::from_secs(90));
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    let nat: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(" nat client-host "))
        .collect();
    assert!(
        nat.iter().any(|l| {
            l.contains("192.168.49.6->192.168.49.5:9000 300/300 EXHAUSTED")
                && l.split("insert_failed ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.replace(',', "").parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
        }),
        "no plain line with the full path and insert_failed > 0:\n{}",
        run.stderr
    );
    assert_gone(&name);

    let name = unique_name("lpo");
    let _guard = LabGuard { name: name.clone() };
    let run = Running::start(&file, &name, &["--no-nat-panel"], None).wait(Duration::from_secs(90));
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(
        run.stderr.contains("t=") && !run.stderr.contains(" nat client-host "),
        "{}",
        run.stderr
    );
    assert_gone(&name);
}
