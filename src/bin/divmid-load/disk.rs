//! How fast the disk makes a small write durable, and the ceiling that puts on calls
//! answered only after their commit: the exchange acknowledges nothing before the write
//! that holds it is fsynced, so no arrangement of threads answers a call sooner than the
//! disk allows. Its commit is two such writes, one after the other: the journal's
//! (appended to sled's file and made durable), then the acknowledged mark's (a few bytes
//! overwritten in a file of its own and made durable), so both are timed. So are two
//! commits of one write under way at once, each from a thread of its own, which would
//! shorten a call's wait only if the disk made both durable in about the time of one.

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

/// What the disk took to make each write durable, sorted, and the CPU it cost.
pub struct SyncLatency {
    sorted: Vec<Duration>,
    /// The writing thread's CPU (user and system) per write, on average.
    cpu: Duration,
    /// How many commits were under way at once.
    at_once: u32,
}

impl SyncLatency {
    /// Times `writes` durable writes of the kind given in new files in `directory`, named
    /// with `tag`, and removes the files.
    fn measure(
        directory: &Path,
        writes: usize,
        kind: Writes,
        tag: usize,
    ) -> Result<SyncLatency, String> {
        let named = |error: std::io::Error| format!("--dir {}: {error}", directory.display());
        let file = |name: &str| {
            directory.join(format!(".divmid-load-{name}-{}-{tag}", std::process::id()))
        };
        let journal_path = file("disk");
        let mark_path = file("mark");
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
        let cpu_before = thread_cpu();
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
        let cpu = thread_cpu().saturating_sub(cpu_before) / sorted.len().max(1) as u32;
        drop((journal, mark));
        let removed = std::fs::remove_file(&journal_path);
        let removed = match kind {
            Writes::One => removed,
            Writes::Commit => removed.and(std::fs::remove_file(&mark_path)),
        };
        result.and(removed).map_err(named)?;
        sorted.sort_unstable();
        Ok(SyncLatency {
            sorted,
            cpu,
            at_once: 1,
        })
    }

    /// Times `writes` one-write commits in each of two threads at once, each writing a
    /// file of its own in `directory`.
    fn measure_two_at_once(directory: &Path, writes: usize) -> Result<SyncLatency, String> {
        let (first, second) = std::thread::scope(|scope| {
            let second = scope.spawn(|| SyncLatency::measure(directory, writes, Writes::One, 1));
            let first = SyncLatency::measure(directory, writes, Writes::One, 0);
            (first, second.join())
        });
        let (first, second) = (first?, second.map_err(|_| "a writing thread panicked")??);
        let mut sorted = [first.sorted, second.sorted].concat();
        sorted.sort_unstable();
        Ok(SyncLatency {
            sorted,
            cpu: (first.cpu + second.cpu) / 2,
            at_once: 2,
        })
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
    /// average: a call waits for the next commit to start, then for that commit. With
    /// one commit at a time, the next starts when the one under way ends, about half a
    /// commit later; with two under way at once, one starts every half a commit, so a
    /// call waits about a quarter of one before its own.
    pub fn wait_per_call(&self) -> Duration {
        self.mean() + self.mean() / (2 * self.at_once.max(1))
    }

    /// Its quantiles and mean, in milliseconds, and its CPU.
    fn figures(&self) -> String {
        format!(
            "p50 {} ms, mean {} ms, p99 {} ms; the writing thread's CPU {} us each",
            milliseconds(self.quantile(500)),
            milliseconds(self.mean()),
            milliseconds(self.quantile(990)),
            self.cpu.as_micros(),
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

/// The disk's time for one durable write, for the exchange's commit of two, and for
/// two one-write commits under way at once.
pub struct Disk {
    one: SyncLatency,
    commit: SyncLatency,
    two_at_once: SyncLatency,
}

impl Disk {
    /// Times `writes` of each kind in `directory` (twice that for two at once).
    pub fn measure(directory: &Path, writes: usize) -> Result<Disk, String> {
        Ok(Disk {
            one: SyncLatency::measure(directory, writes, Writes::One, 0)?,
            commit: SyncLatency::measure(directory, writes, Writes::Commit, 0)?,
            two_at_once: SyncLatency::measure_two_at_once(directory, writes)?,
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
            "two writes of {WRITE_BYTES} bytes under way at once, each to a file of its own \
             from a thread of its own and made durable: {}",
            self.two_at_once.figures(),
        );
        println!(
            "a call answered after its commit waits for the next commit to start, then for \
             that commit: at least {} ms beyond the transport with one write a commit, {} ms \
             with the exchange's two, {} ms with two one-write commits under way at once, on \
             average",
            milliseconds(self.one.wait_per_call()),
            milliseconds(self.commit.wait_per_call()),
            milliseconds(self.two_at_once.wait_per_call()),
        );
    }

    /// The most `in_flight` calls at a time can be answered at, each taking the
    /// baseline's time (`baseline_per_second` at the same concurrency) plus the wait
    /// for a commit, before any work of the exchange's own.
    pub fn print_ceiling(&self, in_flight: usize, baseline_per_second: u64) {
        let (baseline_call, one) = self.one.ceiling(in_flight, baseline_per_second);
        let (_, commit) = self.commit.ceiling(in_flight, baseline_per_second);
        let (_, two_at_once) = self.two_at_once.ceiling(in_flight, baseline_per_second);
        let share = |ceiling: u64| hundredths(ceiling * 100 / baseline_per_second.max(1));
        println!(
            "baseline: {baseline_per_second} calls/s at {in_flight} in flight, {} ms each; \
             with the commit's wait, at most {one} calls/s ({} of the baseline) with one \
             write a commit, {commit} calls/s ({}) with the exchange's, {two_at_once} calls/s \
             ({}) with two one-write commits under way at once, before any work of the \
             exchange's own",
            milliseconds(baseline_call),
            share(one),
            share(commit),
            share(two_at_once),
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

/// The CPU the calling thread has used, in user and system time.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes only the structure it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let of = |time: libc::timeval| {
        Duration::from_secs(u64::try_from(time.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(time.tv_usec).unwrap_or(0))
    };
    of(usage.ru_utime) + of(usage.ru_stime)
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
        assert_eq!(disk.two_at_once.sorted.len(), 40, "each thread's writes");
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
        let mut latency = SyncLatency {
            sorted: vec![Duration::from_micros(200); 3],
            cpu: Duration::from_micros(50),
            at_once: 2,
        };
        // Two under way at once: one starts every 0.1 ms, so a call waits 0.05 ms for
        // the next, then 0.2 ms for it.
        assert_eq!(latency.wait_per_call(), Duration::from_micros(250));
        latency.at_once = 1;
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
