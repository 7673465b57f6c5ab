//! The conntrack counters of a lab's Docker hosts while `lab run` ramps, for the live view's
//! NAT panel: per host one small request (the per-CPU statistics and the entry count, never the
//! table: at a million entries a dump costs seconds of CPU), on a thread of its own, so that a
//! slow kernel never stalls the 100 ms snapshot loop. The caller asks at its own pace
//! ([`StatsReader::poll`]) and takes the last finished reading: nothing is read while nobody
//! asks (during a hold, or once the watch is over), and one reading at most is in progress.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conntrack::{self, Stats};
use crate::lab::netlink::run_in_netns;
use crate::lab::plan::{NetnsName, Plan};

/// One reading of every Docker host's counters.
#[derive(Debug, Clone)]
pub struct Reading {
    /// When the reading finished.
    pub at: Instant,
    /// Per Docker host (plan order): its name and counters, `None` when they could not be read
    /// (the reason is logged).
    pub hosts: Vec<(String, Option<Stats>)>,
    /// What the reading took, all hosts together.
    pub took: Duration,
}

/// Reads the counters of the lab's Docker hosts on a thread of its own, on request.
pub struct StatsReader {
    ask: Option<mpsc::SyncSender<()>>,
    answers: mpsc::Receiver<Reading>,
    thread: Option<JoinHandle<()>>,
    every: Duration,
    asked: Option<Instant>,
    pending: bool,
}

impl StatsReader {
    /// A reader of the Docker hosts of `plan`, read at most once per `every`; `None` when the
    /// lab has no Docker host, or no thread could be made (then the panel shows no counters).
    pub fn start(plan: &Plan, every: Duration) -> Option<Self> {
        let hosts: Vec<(String, NetnsName)> = super::docker_hosts(plan)
            .into_iter()
            .map(|id| {
                let h = plan.host(id);
                (h.name.to_string(), h.netns.clone())
            })
            .collect();
        if hosts.is_empty() {
            return None;
        }
        // One request waits at most: a second is never queued behind a slow reading.
        let (ask, asks) = mpsc::sync_channel::<()>(1);
        let (answer, answers) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("nat-stats".into())
            .spawn(move || {
                // Ends when the reader is dropped (the asking side closes) or nobody listens.
                for () in asks.iter() {
                    if answer.send(read(&hosts)).is_err() {
                        break;
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Self {
                ask: Some(ask),
                answers,
                thread: Some(thread),
                every,
                asked: None,
                pending: false,
            }),
            Err(e) => {
                tracing::warn!("no NAT counters in the live view: start a thread: {e}");
                None
            }
        }
    }

    /// The reading finished since the last call, if any; asks for the next one when none is
    /// in progress and the last was asked for at least `every` ago. Never waits.
    pub fn poll(&mut self) -> Option<Reading> {
        let mut got = None;
        while let Ok(r) = self.answers.try_recv() {
            self.pending = false;
            got = Some(r);
        }
        let due = self.asked.is_none_or(|t| t.elapsed() >= self.every);
        if !self.pending
            && due
            && let Some(ask) = &self.ask
            && ask.try_send(()).is_ok()
        {
            self.pending = true;
            self.asked = Some(Instant::now());
        }
        got
    }
}

impl Drop for StatsReader {
    fn drop(&mut self) {
        // Closing the asking side ends the thread after its reading in progress, if any (each
        // receive of it is bounded by conntrack's timeout).
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every host's counters, one after the other.
fn read(hosts: &[(String, NetnsName)]) -> Reading {
    let start = Instant::now();
    let hosts = hosts
        .iter()
        .map(|(name, netns)| {
            let stats = match run_in_netns(netns, conntrack::stats) {
                Ok(Ok(s)) => Some(s),
                Ok(Err(e)) | Err(e) => {
                    tracing::debug!("live view: host {name}: {e:#}");
                    None
                }
            };
            (name.clone(), stats)
        })
        .collect();
    let took = start.elapsed();
    tracing::debug!(
        "live view: read the conntrack statistics of the Docker hosts in {} us",
        took.as_micros()
    );
    Reading {
        at: Instant::now(),
        hosts,
        took,
    }
}
