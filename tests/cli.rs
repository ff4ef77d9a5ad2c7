//! The `divmid` command-line client against a real server on 127.0.0.1:0.

use std::process::Command;

use divmid::api::server::{open, run};
use divmid::config::Config;

const ISSUER_TOKEN: &str = "issuer-token-for-the-cli-test-0123";

fn divmid(server: &str, token: Option<&str>, arguments: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_divmid"));
    command.arg("--server").arg(server);
    if let Some(token) = token {
        command.env("DIVMID_TOKEN", token);
    } else {
        command.env_remove("DIVMID_TOKEN");
    }
    let output = command.args(arguments).output().expect("divmid runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_runs_the_user_story() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = Config::default();
    config.server.data_dir = directory.path().to_path_buf();
    config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
    let context = open(config, None).expect("opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let server = format!("http://{}", listener.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, context, async {
        let _ = stopped.await;
    }));

    let story = tokio::task::spawn_blocking(move || {
        let issuer = Some(ISSUER_TOKEN);
        let (ok, created, _) = divmid(
            &server,
            issuer,
            &[
                "issuer",
                "create-account",
                "--name",
                "frank",
                "--tier",
                "public",
                "--role",
                "trader",
            ],
        );
        assert!(ok, "account created");
        let token = created
            .lines()
            .find_map(|line| line.strip_prefix("api_token: "))
            .expect("a token is printed")
            .to_string();
        let trader = Some(token.as_str());
        assert!(
            divmid(
                &server,
                issuer,
                &["issuer", "mint", "--amount", "500", "--key", "m"]
            )
            .0
        );
        assert!(
            divmid(
                &server,
                issuer,
                &["issuer", "set-price", "--tier", "public", "--price", "0.5"]
            )
            .0
        );
        assert!(
            divmid(
                &server,
                trader,
                &[
                    "wallet",
                    "deposit",
                    "--source",
                    "paypal",
                    "--amount",
                    "20",
                    "--reference",
                    "frank@example.com",
                    "--key",
                    "d"
                ]
            )
            .0
        );
        let (ok, bought, _) = divmid(
            &server,
            trader,
            &[
                "wallet",
                "buy",
                "--quantity",
                "10",
                "--max-price",
                "0.5",
                "--key",
                "b",
            ],
        );
        assert!(ok);
        assert!(bought.contains("cost: 5.000000 USD"), "{bought}");
        let (ok, placed, _) = divmid(
            &server,
            trader,
            &[
                "order",
                "place",
                "--side",
                "sell",
                "--price",
                "0.9",
                "--quantity",
                "4",
            ],
        );
        assert!(ok);
        assert!(placed.contains("ORDER_STATUS_OPEN"), "{placed}");
        let (_, balances, _) = divmid(&server, trader, &["wallet", "balances"]);
        assert!(
            balances.contains("USD: available 15.000000 held 0.000000"),
            "{balances}"
        );
        assert!(
            balances.contains("DVM: available 6.000000 held 4.000000"),
            "{balances}"
        );
        let (_, book, _) = divmid(&server, None, &["market", "book"]);
        assert!(book.contains("ask       0.9000           4.00"), "{book}");
        let (ok, _, error) = divmid(
            &server,
            trader,
            &[
                "order",
                "place",
                "--side",
                "sell",
                "--price",
                "1e3",
                "--quantity",
                "1",
            ],
        );
        assert!(!ok);
        assert!(error.contains("InvalidArgument: price: "), "{error}");
        let (ok, _, error) = divmid(&server, None, &["wallet", "balances"]);
        assert!(!ok);
        assert!(error.contains("Unauthenticated"), "{error}");
    });
    story.await.expect("the story runs");
    let _ = stop.send(());
    task.await
        .expect("the server task")
        .expect("the server stops cleanly");
}
