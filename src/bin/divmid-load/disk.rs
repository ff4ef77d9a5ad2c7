//! How fast the disk makes a small write durable, and the ceiling that puts on calls
//! answered only after their commit: the exchange acknowledges nothing before the write
//! that holds it is fsynced, so no arrangement of threads answers a call sooner than the
//! disk allows. Its commit is two such writes, one after the other: the journal's
//! (appended to sled's file and made durable), then the acknowledged mark's (a few bytes
//! overwritten in a file of its own and made durable), so both are timed.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The bytes of each write: a commit of a few dozen unary calls is about this large.
const WRITE_BYTES: usize = 4_096;

/// The bytes of the acknowledged mark's write: one slot of the store's mark file
/// (`src/store/watermark.rs`), two of which it writes in turn.
const MARK_BYTES: usize = 52;

/// What a durable write is timed as: one write alone, or the exchange's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writes {
    /// A block appended to a file, then an fdatasync.
    One,
    /// A block appended to one file and made durable, then a mark overwritten in place in
    /// another and made durable.
    Commit,
}

/// What the disk took to make each write durable, sorted.
pub struct SyncLatency {
    sorted: Vec<Duration>,
}

impl SyncLatency {
    /// Times `writes` durable writes of the kind given in new files in `directory`, and
    /// removes the files.
    fn measure(directory: &Path, writes: usize, kind: Writes) -> Result<SyncLatency, String> {
        let named = |error: std::io::Error| format!("--dir {}: {error}", directory.display());
        let journal_path = directory.join(format!(".divmid-load-disk-{}", std::process::id()));
        let mark_path = directory.join(format!(".divmid-load-mark-{}", std::process::id()));
        let mut journal = create(&journal_path).map_err(named)?;
        let mark = match kind {
            Writes::One => None,
            Writes::Commit => match create_mark(&mark_path) {
                Ok(file) => Some(file),
                Err(error) => {
                    let _ = std::fs::remove_file(&journal_path);
                    return Err(named(error));
                }
            },
        };
        let block = [0x5a_u8; WRITE_BYTES];
        let mut sorted = Vec::with_capacity(writes);
        let mut result = Ok(());
        for write in 0..writes.max(1) {
            let started = Instant::now();
            result = journal.write_all(&block).and_then(|()| journal.sync_data());
            if let (Ok(()), Some(mark)) = (&result, &mark) {
                // The mark's two slots in turn, as the store writes them.
                let slot = (write % 2 * MARK_BYTES) as u64;
                result = mark
                    .write_all_at(&[0xa5; MARK_BYTES], slot)
                    .and_then(|()| mark.sync_data());
            }
            if result.is_err() {
                break;
            }
            sorted.push(started.elapsed());
        }
        drop((journal, mark));
        let removed = std::fs::remove_file(&journal_path);
        let removed = match kind {
            Writes::One => removed,
            Writes::Commit => removed.and(std::fs::remove_file(&mark_path)),
        };
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

    /// Its quantiles and mean, in milliseconds.
    fn figures(&self) -> String {
        format!(
            "p50 {} ms, mean {} ms, p99 {} ms",
            milliseconds(self.quantile(500)),
            milliseconds(self.mean()),
            milliseconds(self.quantile(990)),
        )
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

/// The disk's time for one durable write and for the exchange's commit of two.
pub struct Disk {
    one: SyncLatency,
    commit: SyncLatency,
}

impl Disk {
    /// Times `writes` of each kind in `directory`.
    pub fn measure(directory: &Path, writes: usize) -> Result<Disk, String> {
        Ok(Disk {
            one: SyncLatency::measure(directory, writes, Writes::One)?,
            commit: SyncLatency::measure(directory, writes, Writes::Commit)?,
        })
    }

    pub fn print(&self, directory: &Path) {
        println!(
            "disk under {}: {} writes of {WRITE_BYTES} bytes, each then made durable \
             (fdatasync): {}",
            directory.display(),
            self.one.sorted.len(),
            self.one.figures(),
        );
        println!(
            "the exchange's commit, such a write and then a {MARK_BYTES}-byte mark \
             overwritten in a file of its own, each made durable: {}",
            self.commit.figures(),
        );
        println!(
            "a call answered after its commit waits for about half the commit under way, \
             then its own: at least {} ms beyond the transport with one write a commit, {} ms \
             with the exchange's two, on average",
            milliseconds(self.one.wait_per_call()),
            milliseconds(self.commit.wait_per_call()),
        );
    }

    /// The most `in_flight` calls at a time can be answered at, each taking the
    /// baseline's time (`baseline_per_second` at the same concurrency) plus the wait
    /// for a commit, before any work of the exchange's own.
    pub fn print_ceiling(&self, in_flight: usize, baseline_per_second: u64) {
        let (baseline_call, one) = self.one.ceiling(in_flight, baseline_per_second);
        let (_, commit) = self.commit.ceiling(in_flight, baseline_per_second);
        let share = |ceiling: u64| hundredths(ceiling * 100 / baseline_per_second.max(1));
        println!(
            "baseline: {baseline_per_second} calls/s at {in_flight} in flight, {} ms each; \
             with the commit's wait, at most {one} calls/s ({} of the baseline) with one \
             write a commit, {commit} calls/s ({}) with the exchange's, before any work of \
             the exchange's own",
            milliseconds(baseline_call),
            share(one),
            share(commit),
        );
    }
}

/// A new file, for writing.
fn create(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A new mark file with both slots written and durable, as the store creates it, so that
/// writing a mark never changes its size.
fn create_mark(path: &Path) -> std::io::Result<File> {
    let file = create(path)?;
    file.write_all_at(&[0; 2 * MARK_BYTES], 0)?;
    file.sync_all()?;
    Ok(file)
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
    fn each_write_is_timed_and_the_files_are_removed() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let disk = Disk::measure(directory.path(), 20).expect("measured");
        for latency in [&disk.one, &disk.commit] {
            assert_eq!(latency.sorted.len(), 20);
            assert!(latency.quantile(500) <= latency.quantile(990));
            assert!(latency.wait_per_call() >= latency.mean());
        }
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
        let error = Disk::measure(&missing, 5).err().expect("refused");
        assert!(error.starts_with("--dir "), "{error}");
        assert!(error.contains("missing"), "{error}");
    }
}
