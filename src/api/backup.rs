//! `Issuer.Backup`: a consistent backup of the running store, streamed to the client in
//! chunks while trading goes on. It is read on a blocking thread from the snapshot files
//! and the journal, never from the sequencer or the store thread, and no faster than the
//! client takes it.

use std::io::Write;
use std::sync::Arc;

use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::Context;
use super::proto;
use super::status;

/// The bytes of one chunk, at most: half the message limit or this.
const CHUNK_BYTES_MAX: usize = 256 * 1024;

/// Chunks read ahead of the client.
const CHUNKS_QUEUED: usize = 4;

/// Starts a backup; one at a time.
pub fn start(context: &Arc<Context>) -> Result<BoxStream<proto::BackupChunk>, Status> {
    let hold = context
        .pipeline
        .hold_journal()
        .ok_or_else(|| status::busy("another backup is being taken; one at a time"))?;
    let (sender, receiver) = mpsc::channel(CHUNKS_QUEUED);
    let source = context.backups.clone();
    let committed = context.pipeline.committed_handle();
    let chunk_bytes = CHUNK_BYTES_MAX.min(context.config.server.message_bytes_max / 2);
    let stopping = context.stopping.subscribe();
    tokio::task::spawn_blocking(move || {
        let mut chunks = Chunks {
            sender: sender.clone(),
            buffer: Vec::with_capacity(chunk_bytes),
            chunk_bytes,
            stopping,
        };
        let started = std::time::Instant::now();
        let written = source.write_to(|| committed.get(), &mut chunks);
        drop(hold);
        let last = match written {
            Ok(summary) => {
                tracing::info!(
                    seq = summary.seq,
                    snapshot_seq = summary.snapshot_seq,
                    records = summary.records,
                    bytes = summary.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "backup taken"
                );
                Ok(proto::BackupChunk {
                    data: std::mem::take(&mut chunks.buffer),
                    seq: summary.seq,
                    sha256: hex(&summary.sha256),
                })
            }
            Err(error) => {
                tracing::warn!(%error, "a backup was not completed");
                Err(status::internal(format!("the backup failed: {error}")))
            }
        };
        let _ = sender.blocking_send(last);
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
        receiver,
    )))
}

/// The lowercase hex of a hash.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Cuts what the backup writes into chunks and hands each to the client's stream,
/// waiting while the client is behind.
struct Chunks {
    sender: mpsc::Sender<Result<proto::BackupChunk, Status>>,
    buffer: Vec<u8>,
    chunk_bytes: usize,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let taken = bytes.len().min(self.chunk_bytes - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..taken]);
        if self.buffer.len() == self.chunk_bytes {
            if *self.stopping.borrow() {
                return Err(std::io::Error::other("the server is stopping"));
            }
            let chunk = proto::BackupChunk {
                data: std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk_bytes)),
                seq: 0,
                sha256: String::new(),
            };
            self.sender.blocking_send(Ok(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // The last bytes go with the summary.
        Ok(())
    }
}
