//! `report.html` of `lab run --out DIR`, in a real browser (root, and Debian's `chromium`,
//! which `lab.sh test` installs): lab 07 runs under a name of its own and its page is opened
//! from disk by headless Chromium.
//!
//! The browser is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: the
//! commands go in on fd 3, answers and events come out on fd 4, one JSON message each, ended by
//! a NUL byte; no port is opened). That is the robust way to see what a page does: the
//! browser itself reports every script exception (`Runtime.exceptionThrown`), console call
//! (`Runtime.consoleAPICalled`), browser-side error such as a failed load (`Log.entryAdded`)
//! and every request (`Network.requestWillBeSent`), where grepping `--enable-logging` output
//! would miss failed loads and depends on a log format. It also gives the rendered text
//! (`innerText`: what is on screen, table cells tab-separated), the screenshot and a PDF.

mod common;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// How long one answer of the browser may take.
const ANSWER: Duration = Duration::from_secs(30);
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Chromium under the names distributions give it, found on `PATH`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// A pipe whose both ends close on exec (the child gets copies at fds 3 and 4 only).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe2: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Headless Chromium driven over its DevTools pipe, one page attached.
struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Every event of the page so far.
    events: Vec<Value>,
    _profile: TempDir,
}

impl Browser {
    fn launch(program: &Path) -> Self {
        let profile = TempDir::new("html-chromium");
        let (to_browser, commands) = pipe();
        let (messages, from_browser) = pipe();
        let (fd3, fd4) = (to_browser.as_raw_fd(), from_browser.as_raw_fd());
        let mut cmd = Command::new(program);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: the renderers it starts are stopped with it.
        .process_group(0);
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. Copies
        // above 10 first, so that placing them at 3 and 4 cannot overwrite one another; dup2
        // leaves the placed copies open across exec.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(fd3, libc::F_DUPFD_CLOEXEC, 10);
                let b = libc::fcntl(fd4, libc::F_DUPFD_CLOEXEC, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        // The child's ends, closed here so that the reader sees the end when it exits.
        drop((to_browser, from_browser));
        let (tx, rx) = channel();
        let mut reader = File::from(messages);
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|&b| b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(v) = serde_json::from_slice(&message[..end]) else {
                        continue;
                    };
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut browser = Self {
            child,
            commands: File::from(commands),
            messages: rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.browser_call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].clone();
        let attached = browser.browser_call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        for domain in ["Page", "Runtime", "Log", "Network"] {
            browser.call(&format!("{domain}.enable"), json!({}));
        }
        browser
    }

    fn send(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = Value::String(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("send {method} to chromium: {e}"));
        let deadline = Instant::now() + ANSWER;
        loop {
            let v = self.next_message(deadline, method);
            if v["id"] == json!(id) {
                assert!(
                    v.get("error").is_none(),
                    "chromium refused {method}: {}",
                    v["error"]
                );
                return v["result"].clone();
            }
        }
    }

    /// The next message, an event kept on the way.
    fn next_message(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(v) => {
                if v.get("method").is_some() {
                    self.events.push(v.clone());
                }
                v
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("chromium: no {waiting_for} within {ANSWER:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("chromium exited waiting for {waiting_for}")
            }
        }
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params)
    }

    /// A command to the page.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let session = Some(self.session.clone());
        self.send(session, method, params)
    }

    /// Opens `url` and waits for its load event.
    fn open(&mut self, url: &str) {
        let before = self.events.len();
        self.call("Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + ANSWER;
        while !self.events[before..]
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            self.next_message(deadline, "Page.loadEventFired");
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// Events of the given methods seen so far.
    fn seen(&self, methods: &[&str]) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| methods.iter().any(|m| e["method"] == *m))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.send_close();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still there: stop its process group (ours, by the pid we started).
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill of the process group of our own child.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

impl Browser {
    fn send_close(&mut self) -> std::io::Result<()> {
        self.next_id += 1;
        let mut bytes = serde_json::to_vec(&json!({"id": self.next_id, "method": "Browser.close"}))
            .map_err(std::io::Error::other)?;
        bytes.push(0);
        self.commands.write_all(&bytes)
    }
}

/// Base64 as DevTools sends binary data (standard alphabet, padded).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `64512` -> `64,512`, as the page writes counts.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// A PNG's size and how its pixels spread: (width, height, distinct colours, share of the
/// commonest colour, pixels of the wall's red).
fn pixels(png_bytes: &[u8]) -> (u32, u32, usize, f64, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("its pixels");
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{info:?}");
    let mut colours = std::collections::HashMap::<[u8; 3], usize>::new();
    let mut red = 0;
    for row in buf[..info.line_size * info.height as usize].chunks(info.line_size) {
        for px in row[..info.width as usize * channels].chunks(channels) {
            let rgb = [px[0], px[1], px[2]];
            *colours.entry(rgb).or_default() += 1;
            // The headline's #c62828, give or take anti-aliasing.
            if px[0] > 170 && px[1] < 80 && px[2] < 80 {
                red += 1;
            }
        }
    }
    let total = f64::from(info.width) * f64::from(info.height);
    let top = colours.values().copied().max().unwrap_or(0) as f64 / total;
    (info.width, info.height, colours.len(), top, red)
}

/// The page's rendered text as lines, whitespace inside each line collapsed (table cells stay
/// tab-separated).
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            l.split('\t')
                .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect()
}

/// Lab 07 (its 300-port NAT path fills at 300 of 500) runs with `--out`; Chromium opens its
/// report.html from disk. The rendered page holds the run's numbers as report.json has them
/// (the headline count, each NAT path's row with its ports in use, each expectation with what
/// it got, the verdict, the description, the topology and the commands); the browser saw no
/// exception, console message or error and made no request but the page itself; nothing in
/// the page points outside it; on a phone's width the page does not scroll sideways; it
/// prints to PDF; a 1280x900 screenshot is not blank and shows the wall's red.
#[test]
fn report_html_in_a_real_browser_holds_the_numbers_of_the_run() {
    let test = "report_html_in_a_real_browser_holds_the_numbers_of_the_run";
    if !root_or_skip(test) {
        return;
    }
    let Some(program) = chromium() else {
        skip(
            test,
            "\n\n    *** NO CHROMIUM: report.html was NOT checked in a browser ***\n    \
             install it (`apt-get install chromium`; `./lab.sh test` does)\n",
        );
        return;
    };
    let name = unique_name("html");
    let _guard = LabGuard { name: name.clone() };
    let out = TempDir::new("html-out");
    let dir = out.join("out");
    let run = Running::start(
        &lab_file("07-small-ports.toml"),
        &name,
        &["--quiet", "--out", dir.to_str().expect("utf-8 path")],
        None,
    )
    .wait(RUN_LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert_gone(&name);
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    schema::assert_valid(schema::Kind::Run, &report);
    let file = dir.join("report.html");
    let html = std::fs::read_to_string(&file).expect("report.html");

    // Nothing in the file points outside it (the SVG's xmlns is a name, not a load).
    for bad in [
        "<script", "<link", "<iframe", "<img", "<object", "<embed", "src=", "href=", "url(",
        "@import",
    ] {
        assert!(!html.contains(bad), "report.html has {bad}");
    }

    let mut browser = Browser::launch(&program);
    browser.viewport(1280, 900, false);
    let url = format!("file://{}", file.display());
    browser.open(&url);
    let page = browser.eval(
        "({text: document.body.innerText,
           title: document.title,
           topology: [...document.querySelectorAll('svg.topology text')].map(t => t.textContent),
           plot: [...document.querySelectorAll('#plot svg text')].map(t => t.textContent),
           polylines: document.querySelectorAll('#plot svg polyline').length,
           scripts: document.scripts.length,
           loads: [...document.querySelectorAll('[src],[href],link,base')].map(e => e.outerHTML)})",
    );
    let text = page["text"].as_str().expect("the page's text");
    let rendered = lines(text);
    let has_line = |want: &str| rendered.iter().any(|l| l == want);

    let (established, asked) = (u(&report["established"]), u(&report["asked"]));
    let headline = format!(
        "{} of {} connections established",
        count(established),
        count(asked)
    );
    assert!(text.contains(&headline), "{headline}:\n{text}");
    assert_eq!(
        page["title"],
        json!(format!("lab {name}: {headline}")),
        "{page:#}"
    );
    assert!(text.contains("the NAT's wall"), "{text}");

    // Every NAT path: its row, with the ports in use and the capacity of report.json.
    let mut rows = 0;
    for view in report["nat"].as_array().expect("nat") {
        let rule = format!(
            "{}: nat {}",
            view["host"].as_str().expect("host"),
            view["nat"].as_str().unwrap_or_default()
        );
        for p in view["paths"].as_array().expect("paths") {
            rows += 1;
            let row = format!(
                "{} → {}\t{}\t{}\t{}\t{}",
                p["translated"].as_str().expect("translated"),
                p["dst"].as_str().expect("dst"),
                count(u(&p["ports_used"])),
                count(u(&p["capacity"])),
                p["predicted"].as_u64().map_or("-".into(), count),
                if p["exhausted"] == json!(true) {
                    "exhausted"
                } else {
                    "room left"
                }
            );
            assert!(has_line(&row), "NAT row {row:?} ({rule}):\n{text}");
        }
        assert!(
            text.contains(&format!(
                "insert_failed {}, drop {}",
                count(u(&view["stats"]["insert_failed"])),
                count(u(&view["stats"]["drop"]))
            )),
            "{text}"
        );
    }
    assert_eq!(rows, 1, "lab 07 has one NAT path: {report:#}");

    // Every expectation, with what it got.
    let expectations = report["expectations"].as_array().expect("expectations");
    assert!(!expectations.is_empty());
    for c in expectations {
        let row = format!(
            "{}\t{}\t{}\t{}",
            c["what"].as_str().expect("what"),
            c["expected"].as_str().expect("expected"),
            count(u(&c["actual"])),
            if c["met"] == json!(true) {
                "met"
            } else {
                "NOT MET"
            }
        );
        assert!(has_line(&row), "expectation {row:?}:\n{text}");
    }
    for line in report["verdict"].as_array().expect("verdict") {
        let line = line.as_str().expect("a verdict line");
        assert!(has_line(line), "verdict {line:?}:\n{text}");
    }
    // Each client's row.
    for c in report["outcome"]["last"]["clients"]
        .as_array()
        .expect("clients")
    {
        let start = format!(
            "{}\t{}\t{}\t{}\t{}\t",
            c["group"].as_str().expect("group"),
            c["container"].as_str().expect("container"),
            c["target"].as_str().expect("target"),
            count(u(&c["asked"])),
            count(u(&c["established"]))
        );
        assert!(
            rendered.iter().any(|l| l.starts_with(&start)),
            "client {start:?}:\n{text}"
        );
    }
    assert!(
        text.contains("The 64k wall in miniature, for live demos"),
        "the description:\n{text}"
    );
    assert!(
        has_line(&format!("ip netns add {name}-lan")),
        "the commands:\n{text}"
    );
    let topology: Vec<&str> = page["topology"]
        .as_array()
        .expect("topology texts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["host client-host", "host server-host", "c1  172.17.0.2"] {
        assert!(topology.contains(&want), "topology {want:?}: {topology:?}");
    }
    let plot: Vec<&str> = page["plot"]
        .as_array()
        .expect("plot texts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let wall = format!("the NAT's wall {}", count(established));
    assert!(
        plot.contains(&wall.as_str()),
        "{wall:?} in the plot: {plot:?}"
    );
    assert_eq!(page["polylines"], json!(1), "one client group: {page:#}");
    assert_eq!(page["scripts"], json!(0), "{page:#}");
    assert_eq!(page["loads"], json!([]), "{page:#}");

    // A screenshot as a projector would show it.
    let shot = browser.call("Page.captureScreenshot", json!({"format": "png"}));
    let png_bytes = base64(shot["data"].as_str().expect("screenshot data"));
    if let Some(keep) = std::env::var_os("LAB_KEEP_SCREENSHOT") {
        std::fs::write(&keep, &png_bytes).expect("keep the screenshot");
    }
    let (w, h, colours, top, red) = pixels(&png_bytes);
    assert_eq!((w, h), (1280, 900));
    assert!(colours >= 32, "{colours} colours: blank");
    assert!(top < 0.95, "one colour covers {:.0}%: blank", top * 100.0);
    assert!(
        red >= 500,
        "{red} red pixels: the wall's headline is not on screen"
    );

    // On a phone's width the page itself does not scroll sideways (its tables do).
    browser.viewport(390, 844, true);
    let widths =
        browser.eval("({page: document.documentElement.scrollWidth, screen: window.innerWidth})");
    assert!(
        u(&widths["page"]) <= u(&widths["screen"]),
        "wider than a phone: {widths}"
    );
    browser.viewport(1280, 900, false);

    // It prints.
    let pdf = browser.call("Page.printToPDF", json!({}));
    let pdf = base64(pdf["data"].as_str().expect("PDF data"));
    assert!(pdf.starts_with(b"%PDF"), "not a PDF");

    // The browser saw no error and loaded nothing but the page.
    let errors: Vec<&Value> = browser
        .seen(&["Runtime.exceptionThrown", "Runtime.consoleAPICalled"])
        .into_iter()
        .chain(browser.seen(&["Log.entryAdded"]).into_iter().filter(|e| {
            matches!(
                e["params"]["entry"]["level"].as_str(),
                Some("error" | "warning")
            )
        }))
        .collect();
    assert!(errors.is_empty(), "the browser saw: {errors:#?}");
    let requests: Vec<&str> = browser
        .seen(&["Network.requestWillBeSent"])
        .iter()
        .filter_map(|e| e["params"]["request"]["url"].as_str())
        .collect();
    assert_eq!(requests, [url.as_str()], "requests of the page");
}
