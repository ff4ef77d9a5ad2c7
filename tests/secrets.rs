//! Secrets at rest: a card number never reaches the data directory (journal, snapshots,
//! indexes), only its last four digits; the data directory is created readable by its
//! owner alone.

mod common;

use std::path::Path;

use common::{funded_traders, Server};
use divmid::api::proto;

/// Every file under `directory`, recursively.
fn files(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).expect("listable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_number_never_reaches_the_data_directory() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let server = Server::start_with(&data, |config| {
        // Snapshots too: every state the store writes is searched.
        config.pipeline.snapshot_every_events = 5;
    })
    .await;
    let channel = server.channel().await;
    // Each trader deposits with the card 4111111111111111.
    let mut traders = funded_traders(&channel, "100", &["ann", "ben"], "50", "10").await;
    let balances = traders[0]
        .wallet
        .get_balances(proto::GetBalancesRequest {})
        .await
        .expect("balances answer")
        .into_inner();
    assert!(!balances.balances.is_empty(), "the deposit was credited");
    // Enough events for a snapshot: the interval is also at least twice the state.
    let (mut ann, mut ben) = (traders.remove(0), traders.remove(0));
    common::trade(&mut ann, &mut ben, 30).await;
    drop((ann, ben));
    server.stop().await;

    let card = b"4111111111111111";
    let searched = files(directory.path());
    assert!(
        searched.iter().any(|path| path.ends_with("db")),
        "{searched:?}"
    );
    assert!(
        searched.iter().any(|path| path
            .extension()
            .is_some_and(|extension| extension == "snapshot")),
        "a snapshot was written: {searched:?}"
    );
    for path in searched {
        let bytes = std::fs::read(&path).expect("readable");
        let found = bytes.windows(card.len()).any(|window| window == card);
        assert!(!found, "the card number is in {}", path.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the data directory is its owner's alone"
        );
    }
}
