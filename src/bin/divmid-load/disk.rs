//! How fast the disk makes a small write durable, and the ceiling that puts on calls
//! answered only after their commit: the exchange acknowledges nothing before the write
//! that holds it is fsynced, so no arrangement of threads answers a call sooner than the
//! disk allows.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The bytes of each write: a commit of a few dozen unary calls is about this large.
const WRITE_BYTES: usize = 4_096;

/// What the disk took to make each write durable, sorted.
pub struct SyncLatency {
    sorted: Vec<Duration>,
}

impl SyncLatency {
    /// Appends `writes` blocks to a new file in `directory`, each followed by an
    /// fdatasync, and removes the file.
    pub fn measure(directory: &Path, writes: usize) -> Result<SyncLatency, String> {
        let path = directory.join(format!(".divmid-load-disk-{}", std::process::id()));
        let named = |error: std::io::Error| format!("--dir {}: {error}", directory.display());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(named)?;
        let block = [0x5a_u8; WRITE_BYTES];
        let mut sorted = Vec::with_capacity(writes);
        let mut result = Ok(());
        for _ in 0..writes.max(1) {
            let started = Instant::now();
            result = file.write_all(&block).and_then(|()| file.sync_data());
            if result.is_err() {
                break;
            }
            sorted.push(started.elapsed());
        }
        drop(file);
        let removed = std::fs::remove_file(&path);
        result.and(removed).map_err(named)?;
        sorted.sort_unstable();
        Ok(SyncLatency { sorted })
    }

    /// The time below which `per_mille` thousandths of the writes took.
    pub fn quantile(&self, per_mille: usize) -> Duration {
        let last = self.sorted.len() - 1;
        self.sorted[(last * per_mille + 500) / 1_000]
    }

    pub fn mean(&self) -> Duration {
        self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32
    }

    /// The least a call answered after its commit waits beyond the transport, on
    /// average: commits follow one another, so a call waits for about half the commit
    /// under way when it arrives, then for its own.
    pub fn wait_per_call(&self) -> Duration {
        self.mean() * 3 / 2
    }

    pub fn print(&self, directory: &Path) {
        println!(
            "disk under {}: {} writes of {} bytes, each then made durable (fdatasync): \
             p50 {} ms, mean {} ms, p99 {} ms",
            directory.display(),
            self.sorted.len(),
            WRITE_BYTES,
            milliseconds(self.quantile(500)),
            milliseconds(self.mean()),
            milliseconds(self.quantile(990)),
        );
        println!(
            "a call answered after its commit waits for about half the commit under way, \
             then its own: at least {} ms beyond the transport, on average",
            milliseconds(self.wait_per_call()),
        );
    }

    /// The most `in_flight` calls at a time can be answered at, each taking the
    /// baseline's time (`baseline_per_second` at the same concurrency) plus the wait
    /// for a commit, before any work of the exchange's own.
    pub fn print_ceiling(&self, in_flight: usize, baseline_per_second: u64) {
        let (baseline_call, ceiling) = self.ceiling(in_flight, baseline_per_second);
        println!(
            "baseline: {baseline_per_second} calls/s at {in_flight} in flight, {} ms each; \
             with the commit's wait, at most {ceiling} calls/s ({} of the baseline), before \
             any work of the exchange's own",
            milliseconds(baseline_call),
            hundredths(ceiling * 100 / baseline_per_second.max(1)),
        );
    }

    /// A call's time in the baseline, and the most calls a second with the commit's wait
    /// added to it.
    fn ceiling(&self, in_flight: usize, baseline_per_second: u64) -> (Duration, u64) {
        let in_flight = in_flight as u64;
        let baseline_call =
            Duration::from_nanos(in_flight * 1_000_000_000 / baseline_per_second.max(1));
        let with_commit = (baseline_call + self.wait_per_call()).as_nanos().max(1);
        let ceiling = u128::from(in_flight) * 1_000_000_000 / with_commit;
        (baseline_call, u64::try_from(ceiling).unwrap_or(u64::MAX))
    }
}

/// A duration in milliseconds with three decimals.
fn milliseconds(duration: Duration) -> String {
    let micros = duration.as_micros();
    format!("{}.{:03}", micros / 1_000, micros % 1_000)
}

/// Hundredths written as a decimal.
fn hundredths(value: u64) -> String {
    format!("{}.{:02}", value / 100, value % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_is_timed_and_the_file_is_removed() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let latency = SyncLatency::measure(directory.path(), 20).expect("measured");
        assert_eq!(latency.sorted.len(), 20);
        assert!(latency.quantile(500) <= latency.quantile(990));
        assert!(latency.wait_per_call() >= latency.mean());
        let left: Vec<_> = std::fs::read_dir(directory.path())
            .expect("readable")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn the_ceiling_adds_the_commits_wait_to_the_baselines_time() {
        // Commits of 0.2 ms each: a call waits 0.3 ms beyond the transport.
        let latency = SyncLatency {
            sorted: vec![Duration::from_micros(200); 3],
        };
        assert_eq!(latency.wait_per_call(), Duration::from_micros(300));
        // 64 calls in flight at 64,000 a second take 1 ms each; 1.3 ms with the wait.
        let (baseline_call, ceiling) = latency.ceiling(64, 64_000);
        assert_eq!(baseline_call, Duration::from_millis(1));
        assert_eq!(ceiling, 49_230);
        assert_eq!(milliseconds(baseline_call), "1.000");
        assert_eq!(hundredths(ceiling * 100 / 64_000), "0.76");
    }

    #[test]
    fn a_directory_that_is_not_there_is_named() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let missing = directory.path().join("missing");
        let error = SyncLatency::measure(&missing, 5).err().expect("refused");
        assert!(error.starts_with("--dir "), "{error}");
        assert!(error.contains("missing"), "{error}");
    }
}
