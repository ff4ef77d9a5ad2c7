//! What a run prints: a progress line while it runs, the CPU and memory of a local
//! process, and the summary table.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::run::Tally;

/// CPU time and resident memory of a local process, and the CPU time of its threads by
/// name, read from `/proc`.
#[derive(Clone, Debug)]
pub struct ProcessSample {
    cpu: Duration,
    resident_bytes: u64,
    /// Per thread name (numbered names such as `sled-io-3` counted as one), CPU time.
    threads: BTreeMap<String, Duration>,
    at: Instant,
}

/// What a local process used over the measured part of a run.
#[derive(Clone, Debug)]
pub struct ProcessUse {
    /// Percent of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end.
    pub resident_bytes: u64,
    /// Per thread name, percent of one core, most first.
    pub threads: Vec<(String, f64)>,
}

/// User and system CPU ticks from the text of a `/proc/.../stat` file.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The name a thread is counted under: its own, without a trailing `-N` of a numbered
/// pool (`sled-io-3` is `sled-io`).
fn thread_group(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((pool, number))
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            pool
        }
        _ => name,
    }
}

impl ProcessSample {
    /// The process's figures now, if this system shows them.
    pub fn take(pid: u32) -> Option<ProcessSample> {
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let ticks = cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let resident_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let mut threads = BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let path = task.path();
            // A thread that ended between the listing and the reading is left out.
            let (Ok(name), Ok(stat)) = (
                std::fs::read_to_string(path.join("comm")),
                std::fs::read_to_string(path.join("stat")),
            ) else {
                continue;
            };
            let Some(ticks) = cpu_ticks(&stat) else {
                continue;
            };
            *threads
                .entry(thread_group(name.trim()).to_string())
                .or_insert(Duration::ZERO) += Duration::from_millis(ticks * 1_000 / per_second);
        }
        Some(ProcessSample {
            cpu: Duration::from_millis(ticks * 1_000 / per_second),
            resident_bytes: resident_kib * 1_024,
            threads,
            at: Instant::now(),
        })
    }

    /// What the process used since `earlier`: its share of one core in percent, each
    /// thread name's, and its resident memory now.
    pub fn since(&self, earlier: &ProcessSample) -> ProcessUse {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let percent = |now: Duration, before: Duration| {
            100.0 * now.saturating_sub(before).as_secs_f64() / wall
        };
        let mut threads: Vec<(String, f64)> = self
            .threads
            .iter()
            .map(|(name, cpu)| {
                let before = earlier.threads.get(name).copied().unwrap_or_default();
                (name.clone(), percent(*cpu, before))
            })
            .filter(|(_, share)| *share >= 0.5)
            .collect();
        threads.sort_by(|left, right| right.1.total_cmp(&left.1));
        ProcessUse {
            cpu_percent: percent(self.cpu, earlier.cpu),
            resident_bytes: self.resident_bytes,
            threads,
        }
    }
}

/// Prints the answers per second every second while `running` (on a terminal, on one
/// line; otherwise a line every five seconds).
pub fn progress(
    label: String,
    answers: Arc<AtomicU64>,
    until: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let terminal = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut last = 0;
        let mut ticks = 0u64;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            ticks += 1;
            let now = answers.load(Ordering::Relaxed);
            let rate = now - last;
            last = now;
            let elapsed = started.elapsed().as_secs();
            if terminal {
                eprint!("\r{label}: {elapsed:>3} s, {rate:>9} answers/s ");
                let _ = std::io::stderr().flush();
            } else if ticks.is_multiple_of(5) {
                eprintln!("{label}: {elapsed} s, {rate} answers/s");
            }
        }
        if terminal {
            eprintln!();
        }
    })
}

/// One line of the summary.
pub struct Row {
    pub target: String,
    pub shape: String,
    pub seconds: f64,
    pub tally: Tally,
    /// The target's CPU and resident memory, when it is local.
    pub process: Option<ProcessUse>,
    /// This process's own CPU over the same seconds, when the target is local: the
    /// load's share of the cores the two divide.
    pub load_process: Option<ProcessUse>,
}

impl Row {
    pub fn per_second(&self) -> f64 {
        self.tally.acknowledged as f64 / self.seconds
    }

    fn percentile_ms(&self, quantile: f64) -> f64 {
        self.tally.latency_us.value_at_quantile(quantile) as f64 / 1_000.0
    }

    /// The target's and the load's CPU time per answer, in microseconds, when both were
    /// measured.
    fn cpu_us_per_answer(&self) -> Option<(f64, f64)> {
        let (target, load) = (self.process.as_ref()?, self.load_process.as_ref()?);
        let answers = self.per_second();
        (answers > 0.0).then(|| {
            let per_answer = |used: &ProcessUse| used.cpu_percent / 100.0 * 1e6 / answers;
            (per_answer(target), per_answer(load))
        })
    }
}

/// What the CPU the target and the load spent per answer allows on `cores` shared by
/// both: the most answers a second if every core were always busy with one or the other.
pub struct CoreBound {
    pub target_us: f64,
    pub load_us: f64,
    pub answers_per_second_max: f64,
}

impl CoreBound {
    fn of(row: &Row, cores: usize) -> Option<CoreBound> {
        let (target_us, load_us) = row.cpu_us_per_answer()?;
        let per_answer_us = target_us + load_us;
        (per_answer_us > 0.0).then(|| CoreBound {
            target_us,
            load_us,
            answers_per_second_max: cores as f64 * 1e6 / per_answer_us,
        })
    }
}

/// The cores this machine offers the load and a local target.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The summary table, and the ratio of each exchange row to the baseline of its shape.
pub fn print(rows: &[Row]) {
    println!(
        "{:<10} {:<28} {:>12} {:>9} {:>9} {:>9} {:>8} {:>9}  refused",
        "target", "shape", "answers/s", "p50 ms", "p99 ms", "p99.9 ms", "cpu %", "rss MiB"
    );
    for row in rows {
        let refused: Vec<String> = row
            .tally
            .refused
            .iter()
            .map(|(code, count)| format!("{:?} {count}", tonic::Code::from_i32(*code)))
            .collect();
        let (cpu, rss) = match &row.process {
            Some(used) => (
                format!("{:.0}", used.cpu_percent),
                format!("{:.0}", used.resident_bytes as f64 / 1048576.0),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{:<10} {:<28} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>9}  {}",
            row.target,
            row.shape,
            row.per_second(),
            row.percentile_ms(0.5),
            row.percentile_ms(0.99),
            row.percentile_ms(0.999),
            cpu,
            rss,
            if refused.is_empty() {
                "none".to_string()
            } else {
                refused.join(", ")
            }
        );
    }
    for row in rows {
        if let Some(used) = row.process.as_ref().filter(|used| !used.threads.is_empty()) {
            let threads: Vec<String> = used
                .threads
                .iter()
                .map(|(name, share)| format!("{name} {share:.0}"))
                .collect();
            println!(
                "{} threads, % of one core: {}",
                row.target,
                threads.join(", ")
            );
        }
    }
    print_core_bounds(rows, cores());
    let baseline = rows.iter().find(|row| row.target == "baseline");
    let exchange = rows.iter().find(|row| row.target == "divmid");
    if let (Some(baseline), Some(exchange)) = (baseline, exchange) {
        let ratio = Ratio::between(baseline, exchange);
        println!(
            "ratio divmid/baseline: {:.2} of the answers/s, p99 {:.2} times the baseline's",
            ratio.answers, ratio.p99,
        );
        if let Some(bound) = CoreBound::of(exchange, cores()) {
            println!(
                "the exchange's CPU per answer allows at most {:.2} of the baseline on {} cores",
                bound.answers_per_second_max / baseline.per_second().max(1e-9),
                cores()
            );
        }
    }
}

/// The exchange's figures as a share of the baseline's, measured in the same round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    /// Answers a second, the exchange's over the baseline's.
    pub answers: f64,
    /// The p99 latency, the exchange's over the baseline's.
    pub p99: f64,
}

impl Ratio {
    /// The `exchange` row's figures over the `baseline` row's.
    fn between(baseline: &Row, exchange: &Row) -> Ratio {
        Figures::of(exchange).over(Figures::of(baseline))
    }

    /// The exchange's figures over the mean of a baseline measured just before it and
    /// one measured just after: on a machine whose speed drifts from minute to minute,
    /// a truer measure of the baseline during the exchange's run than either alone.
    pub fn bracketed(before: Figures, exchange: Figures, after: Figures) -> Ratio {
        let mean = Figures {
            answers_per_second: (before.answers_per_second + after.answers_per_second) / 2.0,
            p99_ms: (before.p99_ms + after.p99_ms) / 2.0,
        };
        exchange.over(mean)
    }
}

/// What a round's ratio is made of: one run's answers a second and p99.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    pub answers_per_second: f64,
    pub p99_ms: f64,
}

impl Figures {
    pub fn of(row: &Row) -> Figures {
        Figures {
            answers_per_second: row.per_second(),
            p99_ms: row.percentile_ms(0.99),
        }
    }

    /// These figures as a share of the `baseline`'s.
    pub fn over(self, baseline: Figures) -> Ratio {
        Ratio {
            answers: self.answers_per_second / baseline.answers_per_second.max(1e-9),
            p99: self.p99_ms / baseline.p99_ms.max(1e-9),
        }
    }
}

/// The middle value of `values` (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        count if count % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// The line that sums up every round's ratio, when there were any; `against` says what
/// each was taken against, when it was not the round's own baseline.
fn rounds_line(ratios: &[Ratio], against: &str) -> Option<String> {
    let answers: Vec<f64> = ratios.iter().map(|ratio| ratio.answers).collect();
    let p99: Vec<f64> = ratios.iter().map(|ratio| ratio.p99).collect();
    let listed: Vec<String> = answers.iter().map(|value| format!("{value:.2}")).collect();
    let lowest = answers.iter().copied().reduce(f64::min)?;
    let highest = answers.iter().copied().reduce(f64::max)?;
    Some(format!(
        "ratio divmid/baseline over {} rounds{against}: {} of the answers/s (median {:.2}, \
         lowest {lowest:.2}, highest {highest:.2}), p99 a median {:.2} times the baseline's",
        ratios.len(),
        listed.join(", "),
        median(&answers)?,
        median(&p99)?,
    ))
}

/// Prints every round's ratio and their median, after the rounds' own summaries: each
/// round against its own baseline, then, when `bracketed` has them, each against the mean
/// of its baseline and the one after it.
pub fn print_rounds(ratios: &[Ratio], bracketed: &[Ratio]) {
    let lines = [rounds_line(ratios, ""), rounds_line(bracketed, BRACKETED)];
    for line in lines.into_iter().flatten() {
        println!("{line}");
    }
}

/// How the rounds line names a ratio against the baselines on both sides.
const BRACKETED: &str = ", each against the mean of the baselines before and after it";

/// For each row whose target is local: the CPU per answer of the target and of the load,
/// and the rate the two allow together on the cores they share, against the measured one.
fn print_core_bounds(rows: &[Row], cores: usize) {
    for row in rows {
        let Some(bound) = CoreBound::of(row, cores) else {
            continue;
        };
        println!(
            "{} CPU per answer: {:.2} us, the load's {:.2} us: on {cores} cores at most {:.0} \
             answers/s, {:.0}% of it measured",
            row.target,
            bound.target_us,
            bound.load_us,
            bound.answers_per_second_max,
            100.0 * row.per_second() / bound.answers_per_second_max,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_and_system_ticks_whatever_the_name_holds() {
        let stat = "4242 (sled-io (2) x) S 1 4242 4242 0 -1 4194368 500 0 0 0 1234 56 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(1_290));
        assert_eq!(cpu_ticks("4242 (cut short) S 1"), None);
    }

    fn used(cpu_percent: f64) -> ProcessUse {
        ProcessUse {
            cpu_percent,
            resident_bytes: 0,
            threads: Vec::new(),
        }
    }

    #[test]
    fn the_cpu_per_answer_of_target_and_load_bounds_the_rate_on_the_cores_they_share() {
        let mut tally = Tally::new();
        tally.acknowledged = 1_000_000;
        let mut row = Row {
            target: "divmid".to_string(),
            shape: "session".to_string(),
            seconds: 10.0,
            tally,
            process: Some(used(120.0)),
            load_process: Some(used(30.0)),
        };
        // 100,000 answers a second: 12 us of the target's CPU and 3 of the load's each.
        let bound = CoreBound::of(&row, 2).expect("both measured");
        assert!((bound.target_us - 12.0).abs() < 1e-9);
        assert!((bound.load_us - 3.0).abs() < 1e-9);
        // Two cores give 2,000,000 us a second: 15 us an answer allows 133,333.
        assert_eq!(bound.answers_per_second_max.round(), 133_333.0);
        row.load_process = None;
        assert!(
            CoreBound::of(&row, 2).is_none(),
            "the load's side was not measured"
        );
    }

    #[test]
    fn the_rounds_line_lists_each_ratio_with_their_median_and_extremes() {
        let ratio = |answers, p99| Ratio { answers, p99 };
        let line = rounds_line(&[ratio(0.47, 3.0), ratio(0.41, 2.0), ratio(0.52, 4.5)], "")
            .expect("three rounds");
        assert_eq!(
            line,
            "ratio divmid/baseline over 3 rounds: 0.47, 0.41, 0.52 of the answers/s \
             (median 0.47, lowest 0.41, highest 0.52), p99 a median 3.00 times the baseline's"
        );
        let even = rounds_line(&[ratio(0.40, 2.0), ratio(0.50, 3.0)], "").expect("two rounds");
        assert!(
            even.contains("(median 0.45, lowest 0.40, highest 0.50)"),
            "{even}"
        );
        assert!(
            even.ends_with("p99 a median 2.50 times the baseline's"),
            "{even}"
        );
        assert_eq!(rounds_line(&[], ""), None, "no round had both targets");
    }

    #[test]
    fn a_bracketed_round_is_taken_against_the_mean_of_the_baselines_around_it() {
        let figures = |answers_per_second, p99_ms| Figures {
            answers_per_second,
            p99_ms,
        };
        // A baseline that ran at 800k before the exchange's 360k and at 1M after it.
        let ratio = Ratio::bracketed(
            figures(800_000.0, 10.0),
            figures(360_000.0, 40.0),
            figures(1_000_000.0, 30.0),
        );
        assert!((ratio.answers - 0.4).abs() < 1e-9, "{ratio:?}");
        assert!((ratio.p99 - 2.0).abs() < 1e-9, "{ratio:?}");
        let line = rounds_line(&[ratio], BRACKETED).expect("one round");
        assert!(
            line.starts_with(
                "ratio divmid/baseline over 1 rounds, each against the mean of the baselines \
                 before and after it: 0.40 of the answers/s"
            ),
            "{line}"
        );
    }

    #[test]
    fn numbered_threads_of_a_pool_count_as_one() {
        assert_eq!(thread_group("sled-io-3"), "sled-io");
        assert_eq!(thread_group("sled-io-12"), "sled-io");
        assert_eq!(thread_group("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(thread_group("replica"), "replica");
        assert_eq!(thread_group("trailing-"), "trailing-");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_and_its_threads_are_read_from_proc() {
        let first = ProcessSample::take(std::process::id()).expect("/proc is readable");
        // The thread spins, then waits to be sampled: an ended thread leaves /proc.
        let (spun, spinning) = std::sync::mpsc::channel();
        let (sampled, waiting) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name("busy-1".to_string())
            .spawn(move || {
                let started = Instant::now();
                let mut spins = 0u64;
                while started.elapsed() < Duration::from_millis(300) {
                    spins = std::hint::black_box(spins + 1);
                }
                let _ = spun.send(());
                let _ = waiting.recv();
            })
            .expect("a thread");
        spinning.recv().expect("it spun");
        let last = ProcessSample::take(std::process::id()).expect("still readable");
        drop(sampled);
        busy.join().expect("it ends");
        let used = last.since(&first);
        assert!(used.resident_bytes > 0);
        assert!(used.cpu_percent > 0.0, "{used:?}");
        assert!(
            used.threads.iter().any(|(name, _)| name == "busy"),
            "{used:?}"
        );
    }
}
