//! `divmid-server`: the exchange and issuer ledger, serving gRPC.
//!
//! With no arguments it serves on 127.0.0.1:50051 with its data in `./data`. Flags override
//! the configuration file; `DIVMID_ISSUER_TOKEN` sets the issuer's token. SIGINT or SIGTERM
//! stops it gracefully: no new requests, every accepted command committed, exit 0.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use divmid::api::server::{open, run};
use divmid::config::Config;
use tracing_subscriber::EnvFilter;

/// The allocator: the hand-offs free on one thread what another allocated (a command
/// built by a handler and freed by the sequencer, an event built by the sequencer and
/// freed after the answer), which glibc's malloc serves slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: how long freed memory is kept before it is given back
/// to the system (1,000 ms by default). Its place in mimalloc 3's `mi_option_t`, which
/// `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3's default for [`MI_OPTION_PURGE_DELAY`], to recognize the option by.
const PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1_000;

/// How long the server keeps freed memory before giving it back: longer than the few
/// seconds between two snapshots, whose buffers are the largest memory freed and taken
/// again.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Set in the environment (to anything), leaves transparent huge pages as the system
/// sets them for the server instead of turning them off.
const HUGE_PAGES_VARIABLE: &str = "DIVMID_TRANSPARENT_HUGE_PAGES";

/// The divmid exchange and issuer ledger (gRPC server).
#[derive(Parser, Debug)]
#[command(version)]
struct Arguments {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// The address to listen on [default: 127.0.0.1:50051].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The data directory (store, snapshots, generated issuer token) [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file (sections [server], [engine], [pipeline]).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

/// What else the binary does besides serving.
#[derive(clap::Subcommand, Debug)]
enum Subcommand {
    /// Check a data directory offline: recover it as a start would (snapshot hashes, the
    /// journal replayed to its recorded events, the acknowledged high-water mark, every
    /// invariant), replay the whole journal from genesis where it is kept, and print seq,
    /// accounts, open orders, supply and the state hash. Exits non-zero on any problem.
    /// Stop the server first: the directory is locked while it serves.
    Check {
        /// The data directory [default: the configured one, ./data].
        #[arg(long, conflicts_with = "backup")]
        data_dir: Option<PathBuf>,
        /// Print the state at this sequence number instead of the last, rebuilt by
        /// replaying the journal from genesis (it must start there: no retention). Its
        /// state hash is what a backup taken at that seq restores.
        #[arg(long, conflicts_with = "backup")]
        at_seq: Option<u64>,
        /// Check a backup file instead (from `divmid issuer backup`): its SHA-256, its
        /// snapshot's hash, and its journal replayed in memory to every invariant.
        #[arg(long)]
        backup: Option<PathBuf>,
    },
    /// Restore a backup file into a new (or empty) data directory, after checking it; the
    /// restored directory is then checked as `check` does and its report printed. Serve
    /// it with `divmid-server --data-dir NEW_DIR`. The issuer's token is not in a backup:
    /// give it as to any server (DIVMID_ISSUER_TOKEN, the configuration), or one is
    /// generated.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create; it must not exist or be empty.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    // Everything the server creates (data directory, store, snapshots, token file) is its
    // user's alone.
    #[cfg(unix)]
    // SAFETY: umask has no preconditions and cannot fail; it runs before any thread starts.
    unsafe {
        libc::umask(0o077);
    }
    let arguments = Arguments::parse();
    let config = match configuration(&arguments) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("divmid-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    start_logging(config.server.log_json);
    keep_freed_memory();
    no_transparent_huge_pages();
    if let Some(command) = arguments.command {
        return offline(command, &config);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "divmid-server stopped");
            ExitCode::FAILURE
        }
    }
}

/// Keeps freed memory for reuse for [`PURGE_DELAY_MS`] instead of mimalloc's second. The
/// exchange frees and allocates again the same amounts all the time (commits and their
/// events, snapshots' buffers every few seconds, expiring client order ids), and memory
/// given back is zeroed by the kernel when it is touched again (on a virtual machine
/// whose balloon reports free pages, faulted in from the host as well); memory unused
/// for longer is still given back. `MIMALLOC_PURGE_DELAY` in the environment is left as
/// the operator set it.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reading and setting an allocator option has no preconditions; an option
    // index mimalloc does not know is ignored by it.
    let delay_ms = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    if delay_ms != PURGE_DELAY_DEFAULT_MS {
        // Another mimalloc, whose options are numbered otherwise: leave them alone.
        tracing::warn!(
            option = MI_OPTION_PURGE_DELAY,
            value = delay_ms,
            "the allocator's purge delay is not where it was expected; freed memory is given back as the allocator decides"
        );
        return;
    }
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

/// Turns transparent huge pages off for the server, unless [`HUGE_PAGES_VARIABLE`] is
/// set. Where the system makes them the default, every first touch of a 2 MiB region
/// zeroes (and on a virtual machine, faults in from the host) all of it: while the
/// exchange's memory grows, in its first seconds under load, that took half the server's
/// CPU and a quarter of its rate; the steady state measured the same either way.
#[cfg(target_os = "linux")]
fn no_transparent_huge_pages() {
    if std::env::var_os(HUGE_PAGES_VARIABLE).is_some() {
        return;
    }
    // SAFETY: `PR_SET_THP_DISABLE` takes plain integers and changes only how the kernel
    // backs this process's memory (and its children's).
    let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if result != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "transparent huge pages stay as the system sets them"
        );
    }
}

/// Transparent huge pages are Linux's.
#[cfg(not(target_os = "linux"))]
fn no_transparent_huge_pages() {}

/// The configuration file's settings, with the flags over them.
fn configuration(arguments: &Arguments) -> Result<Config, String> {
    let mut config = match &arguments.config {
        None => Config::default(),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| error.to_string())
            .and_then(|text| Config::from_toml(&text).map_err(|error| error.to_string()))
            .map_err(|error| format!("{}: {error}", path.display()))?,
    };
    if let Some(listen) = arguments.listen {
        config.server.listen = listen;
    }
    if let Some(data_dir) = &arguments.data_dir {
        config.server.data_dir = data_dir.clone();
    }
    config.server.log_json |= arguments.log_json;
    Ok(config)
}

/// The work done without serving: checks and restores.
fn offline(command: Subcommand, config: &Config) -> ExitCode {
    let directory_or_default =
        |data_dir: Option<PathBuf>| data_dir.unwrap_or_else(|| config.server.data_dir.clone());
    match command {
        Subcommand::Check {
            data_dir,
            at_seq: Some(seq),
            backup: None,
        } => {
            let directory = directory_or_default(data_dir);
            let what = format!("{} holds a sound state at seq {seq}", directory.display());
            let checked = || divmid::store::check_at(&directory, &config.engine, seq);
            report(checked, config, &directory, &what)
        }
        Subcommand::Check {
            data_dir,
            at_seq: None,
            backup: None,
        } => {
            let directory = directory_or_default(data_dir);
            let what = format!("{} is sound", directory.display());
            let checked = || divmid::store::check(&directory, &config.engine);
            report(checked, config, &directory, &what)
        }
        Subcommand::Check {
            backup: Some(file), ..
        } => {
            let what = format!("{} is a sound backup", file.display());
            let checked = || divmid::store::check_backup(&file, &config.engine);
            report(checked, config, &file, &what)
        }
        Subcommand::Restore { from, data_dir } => {
            let what = format!(
                "{} restored into {}, which checks out",
                from.display(),
                data_dir.display()
            );
            let restore = || divmid::store::restore(&from, &data_dir, &config.engine);
            report(restore, config, &from, &what)
        }
    }
}

/// Logs to standard error: JSON lines, or text with colour only for a person at a
/// terminal (a log file or a journal gets plain text). `RUST_LOG` filters, `info` by
/// default.
fn start_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

/// Runs a check (or a restore, which ends with one) with a validated configuration and
/// prints its report and `ok: {what}`, or what is wrong with `subject` (exit status 1).
fn report(
    checked: impl FnOnce() -> Result<divmid::store::CheckReport, divmid::store::StoreError>,
    config: &Config,
    subject: &std::path::Path,
    what: &str,
) -> ExitCode {
    if let Err(error) = config.engine.validate() {
        eprintln!("divmid-server: {error}");
        return ExitCode::FAILURE;
    }
    match checked() {
        Ok(report) => {
            println!("{report}");
            println!("ok: {what}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("divmid-server: {}: {error}", subject.display());
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), divmid::api::server::ServeError> {
    let listen = config.server.listen;
    let shutdown = shutdown_signal();
    let context = open(config, std::env::var("DIVMID_ISSUER_TOKEN").ok())?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    run(listener, context, shutdown).await
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives once the server listens
/// always stops it gracefully.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (interrupt, terminate) => {
                let error = interrupt.err().or(terminate.err());
                tracing::error!(
                    ?error,
                    "cannot watch SIGINT and SIGTERM; only SIGINT stops the server"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutdown requested");
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    }
}
