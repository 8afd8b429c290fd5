//! The soak's verdict: each promise with its measured value, and the tables (asks and how they
//! ended, failure reasons, token delivery, RSS per node, the chaos carried out).

use super::asks::{Api, AskRecord, Broken, End};
use super::chaos;
use super::rss;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The bounds the verdict holds the run to.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub deadline_s: f64,
    /// Most failed asks, as a share of all asks sent.
    pub max_failed_ratio: f64,
    pub rss_warmup_s: f64,
    pub rss_min_span_s: f64,
    pub rss_max_slope_mib_per_min: f64,
    pub rss_max_mib: f64,
}

pub struct Report {
    /// One line saying what ran.
    pub setup: String,
    pub bounds: Bounds,
    pub records: Vec<AskRecord>,
    pub planned_chaos: usize,
    pub chaos: Vec<chaos::Done>,
    pub rss: Vec<rss::Run>,
    pub node_ids: Vec<String>,
    /// Connection attempts a down node refused (no ask sent).
    pub refused: u64,
    /// After the chaos: every node answered a probe ask with its expected text, or why not.
    pub final_check: Result<(), String>,
    pub load_s: f64,
    /// The last lines of each node's log (shown when a promise is broken).
    pub logs: Vec<(String, String)>,
}

/// One promise and what the run measured.
pub struct Promise {
    pub name: String,
    pub value: String,
    pub kept: bool,
}

/// The answer moved to another node mid-answer (when its end said so).
fn moved(r: &AskRecord) -> bool {
    r.attempts.is_some_and(|a| a > 1)
}

/// The `p`-th percentile by nearest rank.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    fn count(&self, f: impl Fn(&AskRecord) -> bool) -> usize {
        self.records.iter().filter(|r| f(r)).count()
    }

    fn broken(&self, b: Broken) -> usize {
        self.count(|r| matches!(r.end, End::Broken(x, _) if x == b))
    }

    pub fn done(&self) -> usize {
        self.count(|r| matches!(r.end, End::Done | End::Recovered))
    }

    pub fn failed(&self) -> usize {
        self.count(|r| matches!(r.end, End::Failed(..)))
    }

    pub fn kills(&self, temporal: bool) -> usize {
        self.chaos
            .iter()
            .filter(|c| c.what.ends_with("temporal") == temporal)
            .count()
    }

    pub fn promises(&self) -> Vec<Promise> {
        let b = &self.bounds;
        let n = self.records.len();
        let zero = |name: String, count: usize| Promise {
            name,
            value: count.to_string(),
            kept: count == 0,
        };
        let failed_ratio = self.failed() as f64 / n.max(1) as f64;
        let judged: Vec<&rss::Run> = self
            .rss
            .iter()
            .filter(|r| r.slope_mib_per_min.is_some())
            .collect();
        let worst = judged
            .iter()
            .filter_map(|r| r.slope_mib_per_min)
            .fold(f64::NEG_INFINITY, f64::max);
        let highest = self.rss.iter().map(|r| r.max_mib).fold(0.0, f64::max);
        let chaos_errors: Vec<&str> = self
            .chaos
            .iter()
            .filter_map(|c| c.error.as_deref())
            .collect();
        vec![
            Promise {
                name: "asks were served".into(),
                value: format!("{} done of {n}", self.done()),
                kept: self.done() > 0,
            },
            zero(
                format!(
                    "every ask ended (done or failed) within {:.0} s",
                    b.deadline_s
                ),
                self.broken(Broken::Lost),
            ),
            zero(
                "done = exactly the expected text, streamed and final (nothing repeated or lost)"
                    .into(),
                self.broken(Broken::WrongText),
            ),
            zero("no cross-talk".into(), self.broken(Broken::CrossTalk)),
            zero(
                "no ask cancelled unasked".into(),
                self.broken(Broken::Cancelled),
            ),
            zero(
                "every failed ask has a reason".into(),
                self.broken(Broken::NoReason),
            ),
            Promise {
                name: format!("failed asks <= {:.1} % of asks", b.max_failed_ratio * 100.0),
                value: format!("{:.2} % ({})", failed_ratio * 100.0, self.failed()),
                kept: failed_ratio <= b.max_failed_ratio,
            },
            Promise {
                name: format!(
                    "RSS flat: each node process sampled >= {:.0} s after a {:.0} s warm-up grows <= {:.1} MiB/min",
                    b.rss_min_span_s, b.rss_warmup_s, b.rss_max_slope_mib_per_min
                ),
                value: if judged.is_empty() {
                    "no process lived long enough to judge".into()
                } else {
                    format!("worst {worst:.2} MiB/min over {} process(es)", judged.len())
                },
                kept: judged.is_empty() || worst <= b.rss_max_slope_mib_per_min,
            },
            Promise {
                name: format!(
                    "RSS bounded: every node process stays under {:.0} MiB",
                    b.rss_max_mib
                ),
                value: format!("largest {highest:.1} MiB"),
                kept: highest <= b.rss_max_mib,
            },
            Promise {
                name: "the chaos was carried out, every restart came back".into(),
                value: format!(
                    "{} of {} actions, {} failed{}",
                    self.chaos.len(),
                    self.planned_chaos,
                    chaos_errors.len(),
                    chaos_errors
                        .first()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                kept: self.chaos.len() == self.planned_chaos && chaos_errors.is_empty(),
            },
            Promise {
                name: "after the chaos every node answers".into(),
                value: match &self.final_check {
                    Ok(()) => "yes".into(),
                    Err(e) => e.clone(),
                },
                kept: self.final_check.is_ok(),
            },
        ]
    }

    pub fn kept(&self) -> bool {
        self.promises().iter().all(|p| p.kept)
    }

    /// The first few broken asks, for a failure message.
    pub fn examples(&self, n: usize) -> String {
        self.records
            .iter()
            .filter_map(|r| match &r.end {
                End::Broken(b, why) => Some(format!("{:?} {}: {why}", r.api, b.name())),
                _ => None,
            })
            .take(n)
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{}\n", self.setup);
        self.asks_table(&mut t);
        self.reasons_table(&mut t);
        self.delivery_table(&mut t);
        self.rss_table(&mut t);
        self.chaos_table(&mut t);
        let _ = writeln!(t, "| promise | measured | kept |\n|---|---|---|");
        for p in self.promises() {
            let kept = if p.kept { "yes" } else { "**NO**" };
            let _ = writeln!(t, "| {} | {} | {kept} |", p.name, p.value);
        }
        let examples = self.examples(10);
        if !examples.is_empty() {
            let _ = writeln!(t, "\nBroken asks (first 10):\n{examples}");
        }
        if !self.kept() {
            for (id, log) in &self.logs {
                let _ = writeln!(t, "\nLast lines of {id}'s log:\n{log}");
            }
        }
        t
    }

    fn asks_table(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "| asks | sent | done | done after a reconnect | moved node mid-answer | failed | broken |\n|---|---|---|---|---|---|---|"
        );
        let rows: [(&str, Option<Api>); 3] = [
            ("WebSocket", Some(Api::WebSocket)),
            ("OpenAI stream", Some(Api::OpenAi)),
            ("all", None),
        ];
        for (name, api) in rows {
            let of = |r: &AskRecord| api.is_none_or(|a| r.api == a);
            let c = |f: &dyn Fn(&AskRecord) -> bool| self.count(|r| of(r) && f(r));
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                c(&|_| true),
                c(&|r| matches!(r.end, End::Done | End::Recovered)),
                c(&|r| r.end == End::Recovered),
                c(&|r| moved(r)),
                c(&|r| matches!(r.end, End::Failed(..))),
                c(&|r| matches!(r.end, End::Broken(..))),
            );
        }
        let _ = writeln!(
            t,
            "\n{:.1} asks/s sent. {} connection attempts refused by a node that was down (no ask sent: the user tried again, its own node for 5 s, then the next).\n",
            self.records.len() as f64 / self.load_s.max(1.0),
            self.refused
        );
    }

    fn reasons_table(&self, t: &mut String) {
        let mut by: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for r in &self.records {
            if let End::Failed(code, message) = &r.end {
                let e = by.entry(code.as_str()).or_insert((0, message.as_str()));
                e.0 += 1;
            }
        }
        if by.is_empty() {
            let _ = writeln!(t, "No ask failed.\n");
            return;
        }
        let _ = writeln!(t, "| failed: reason | asks | example |\n|---|---|---|");
        for (code, (n, example)) in by {
            let example: String = example.chars().take(120).collect();
            let _ = writeln!(t, "| {code} | {n} | {} |", example.replace('|', "/"));
        }
        let _ = writeln!(t);
    }

    fn delivery_table(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "Token delivery over {:.0} s of load, ms (done asks; p99 includes the failovers and the Temporal outage)\n\n| | asks / gaps | p50 | p99 | max |\n|---|---|---|---|---|",
            self.load_s
        );
        let done = |r: &&AskRecord| matches!(r.end, End::Done | End::Recovered);
        let rows: Vec<(&str, Vec<f64>)> = vec![
            (
                "first token (ask sent → first text), WebSocket",
                self.of(Api::WebSocket, done, |r| {
                    r.first_token_ms.into_iter().collect()
                }),
            ),
            (
                "first token, OpenAI stream",
                self.of(Api::OpenAi, done, |r| {
                    r.first_token_ms.into_iter().collect()
                }),
            ),
            (
                "next tokens (gap between texts received), WebSocket",
                self.of(Api::WebSocket, done, |r| r.gaps_ms.clone()),
            ),
            (
                "next tokens, OpenAI stream",
                self.of(Api::OpenAi, done, |r| r.gaps_ms.clone()),
            ),
            (
                "whole ask (sent → end), all",
                self.records
                    .iter()
                    .filter(done)
                    .map(|r| r.latency_ms)
                    .collect(),
            ),
        ];
        for (name, mut v) in rows {
            v.sort_by(f64::total_cmp);
            let _ = writeln!(
                t,
                "| {name} | {} | {:.1} | {:.1} | {:.1} |",
                v.len(),
                pct(&v, 50.0),
                pct(&v, 99.0),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(t);
    }

    fn of(
        &self,
        api: Api,
        keep: impl Fn(&&AskRecord) -> bool,
        values: impl Fn(&AskRecord) -> Vec<f64>,
    ) -> Vec<f64> {
        self.records
            .iter()
            .filter(|r| r.api == api)
            .filter(keep)
            .flat_map(values)
            .collect()
    }

    fn rss_table(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "RSS per node, MiB (every process; slope after the warm-up, for those sampled long enough)\n\n| node | processes | min | max | judged | slope MiB/min (worst) | longest judged s |\n|---|---|---|---|---|---|---|"
        );
        for (i, id) in self.node_ids.iter().enumerate() {
            let runs: Vec<&rss::Run> = self.rss.iter().filter(|r| r.node == i).collect();
            let judged: Vec<&&rss::Run> = runs
                .iter()
                .filter(|r| r.slope_mib_per_min.is_some())
                .collect();
            let worst = judged
                .iter()
                .filter_map(|r| r.slope_mib_per_min)
                .fold(f64::NEG_INFINITY, f64::max);
            let longest = judged.iter().map(|r| r.span_s).fold(0.0, f64::max);
            let _ = writeln!(
                t,
                "| {id} | {} | {:.1} | {:.1} | {} | {} | {:.0} |",
                runs.len(),
                runs.iter().map(|r| r.min_mib).fold(f64::INFINITY, f64::min),
                runs.iter().map(|r| r.max_mib).fold(0.0, f64::max),
                judged.len(),
                if judged.is_empty() {
                    "–".to_string()
                } else {
                    format!("{worst:.2}")
                },
                longest
            );
        }
        let _ = writeln!(t);
    }

    fn chaos_table(&self, t: &mut String) {
        let mut took: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for c in &self.chaos {
            took.entry(c.what.as_str()).or_default().push(c.took_s);
        }
        let _ = writeln!(
            t,
            "Chaos carried out ({} node kills, {} Temporal kills)\n\n| action | times | back ready in s (p50 / max) |\n|---|---|---|",
            self.kills(false),
            self.kills(true)
        );
        for (what, mut v) in took {
            v.sort_by(f64::total_cmp);
            let _ = writeln!(
                t,
                "| {what} | {} | {:.1} / {:.1} |",
                v.len(),
                pct(&v, 50.0),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(t);
    }
}
