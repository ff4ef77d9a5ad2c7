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

    pub fn quantile(&self, quantile: f64) -> Duration {
        let last = self.sorted.len() - 1;
        self.sorted[((last as f64) * quantile).round() as usize]
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
             p50 {:.3} ms, mean {:.3} ms, p99 {:.3} ms",
            directory.display(),
            self.sorted.len(),
            WRITE_BYTES,
            milliseconds(self.quantile(0.5)),
            milliseconds(self.mean()),
            milliseconds(self.quantile(0.99)),
        );
        println!(
            "a call answered after its commit waits for about half the commit under way, \
             then its own: at least {:.3} ms beyond the transport, on average",
            milliseconds(self.wait_per_call()),
        );
    }

    /// The most `in_flight` calls at a time can be answered at, each taking the
    /// baseline's time (`baseline_per_second` at the same concurrency) plus the wait
    /// for a commit, before any work of the exchange's own.
    pub fn print_ceiling(&self, in_flight: usize, baseline_per_second: f64) {
        let baseline_seconds = in_flight as f64 / baseline_per_second.max(1e-9);
        let ceiling = in_flight as f64 / (baseline_seconds + self.wait_per_call().as_secs_f64());
        println!(
            "baseline: {baseline_per_second:.0} calls/s at {in_flight} in flight, {:.3} ms \
             each; with the commit's wait, at most {ceiling:.0} calls/s ({:.2} of the \
             baseline), before any work of the exchange's own",
            baseline_seconds * 1_000.0,
            ceiling / baseline_per_second.max(1e-9),
        );
    }
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_is_timed_and_the_file_is_removed() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let latency = SyncLatency::measure(directory.path(), 20).expect("measured");
        assert_eq!(latency.sorted.len(), 20);
        assert!(latency.quantile(0.5) <= latency.quantile(0.99));
        assert!(latency.wait_per_call() >= latency.mean());
        let left: Vec<_> = std::fs::read_dir(directory.path())
            .expect("readable")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
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
