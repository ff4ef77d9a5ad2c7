//! What a run prints: a progress line while it runs, the CPU and memory of a local
//! process, and the summary table.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::run::Tally;

/// CPU time and resident memory of a local process, read from `/proc`.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    cpu: Duration,
    resident_bytes: u64,
    at: Instant,
}

impl ProcessSample {
    /// The process's figures now, if this system shows them.
    pub fn take(pid: u32) -> Option<ProcessSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let resident_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(ProcessSample {
            cpu: Duration::from_millis(ticks * 1_000 / per_second),
            resident_bytes: resident_kib * 1_024,
            at: Instant::now(),
        })
    }

    /// The share of one core the process used since `earlier`, in percent, and its
    /// resident memory now.
    pub fn since(&self, earlier: &ProcessSample) -> (f64, u64) {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let cpu = self.cpu.saturating_sub(earlier.cpu).as_secs_f64();
        (100.0 * cpu / wall, self.resident_bytes)
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
    /// The target's CPU (percent of one core) and resident memory, when it is local.
    pub process: Option<(f64, u64)>,
}

impl Row {
    pub fn per_second(&self) -> f64 {
        self.tally.acknowledged as f64 / self.seconds
    }

    fn percentile_ms(&self, quantile: f64) -> f64 {
        self.tally.latency_us.value_at_quantile(quantile) as f64 / 1_000.0
    }
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
        let (cpu, rss) = match row.process {
            Some((cpu, rss)) => (
                format!("{cpu:.0}"),
                format!("{:.0}", rss as f64 / 1048576.0),
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
    let baseline = rows.iter().find(|row| row.target == "baseline");
    let exchange = rows.iter().find(|row| row.target == "divmid");
    if let (Some(baseline), Some(exchange)) = (baseline, exchange) {
        println!(
            "ratio divmid/baseline: {:.2} of the answers/s, p99 {:.2} times the baseline's",
            exchange.per_second() / baseline.per_second().max(1e-9),
            exchange.percentile_ms(0.99) / baseline.percentile_ms(0.99).max(1e-9),
        );
    }
}
