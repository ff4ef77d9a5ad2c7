//! The `divmid` command-line client against a real server on 127.0.0.1:0.

use std::process::Command;

use divmid::api::server::{open, run};
use divmid::config::Config;

const ISSUER_TOKEN: &str = "issuer-token-for-the-cli-test-0123";

/// A configuration folder with no profiles, so that no profile of the machine's user
/// is read.
fn no_profiles() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "divmid-cli-test-no-profiles-{}",
        std::process::id()
    ))
}

thread_local! {
    /// When set, this thread's calls reach the server through profiles kept in this
    /// folder (one per token, saved on first use) instead of --server and DIVMID_TOKEN.
    static PROFILES: std::cell::RefCell<Option<std::path::PathBuf>> =
        const { std::cell::RefCell::new(None) };
}

/// The name of the profile for `token` in `config`, saved (with a token file) on first use.
fn profile_for(config: &std::path::Path, server: &str, token: Option<&str>) -> String {
    let token = token.unwrap_or_default();
    let name = format!("p{}", token.bytes().map(u64::from).sum::<u64>() % 1_000_003);
    let token_file = config.join(format!("{name}.token"));
    if !token_file.exists() {
        std::fs::create_dir_all(config).expect("a folder");
        std::fs::write(&token_file, token).expect("written");
        let mut add = Command::new(env!("CARGO_BIN_EXE_divmid"));
        add.env("DIVMID_CONFIG_DIR", config)
            .args(["profile", "add", &name, "--server", server]);
        if !token.is_empty() {
            add.arg("--token-file").arg(&token_file);
        }
        let output = add.output().expect("divmid runs");
        assert!(output.status.success(), "{output:?}");
    }
    name
}

fn divmid(server: &str, token: Option<&str>, arguments: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_divmid"));
    command
        .env_remove("DIVMID_TOKEN")
        .env_remove("DIVMID_SERVER");
    match PROFILES.with(|profiles| profiles.borrow().clone()) {
        Some(config) => {
            let profile = profile_for(&config, server, token);
            command.env("DIVMID_CONFIG_DIR", &config);
            command.arg("--profile").arg(profile);
        }
        None => {
            command.env("DIVMID_CONFIG_DIR", no_profiles());
            command.arg("--server").arg(server);
            if let Some(token) = token {
                command.env("DIVMID_TOKEN", token);
            }
        }
    }
    let output = command.args(arguments).output().expect("divmid runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `divmid` and returns what it printed, requiring it to succeed.
fn printed(server: &str, token: Option<&str>, arguments: &[&str]) -> String {
    let (ok, output, error) = divmid(server, token, arguments);
    assert!(ok, "divmid {arguments:?} fails: {error}");
    output
}

/// A running server and how to stop it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), divmid::api::server::ServeError>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the server task")
            .expect("the server stops cleanly");
    }
}

/// Starts a server on `data_dir` and returns its address for `--server`.
async fn start(data_dir: &std::path::Path) -> (String, Running) {
    let mut config = Config::default();
    config.server.data_dir = data_dir.to_path_buf();
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
    (server, Running { stop, task })
}

/// Opens an account with the issuer's token and returns the printed id and token.
fn create_account(server: &str, name: &str, role: &str) -> (String, String) {
    let created = printed(
        server,
        Some(ISSUER_TOKEN),
        &[
            "issuer",
            "create-account",
            "--name",
            name,
            "--tier",
            "public",
            "--role",
            role,
        ],
    );
    let field = |name: &str| {
        created
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .expect("printed")
            .to_string()
    };
    (field("account_id: "), field("api_token: "))
}

/// Runs `divmid` with `input` on its standard input.
fn divmid_with_input(
    server: &str,
    token: &str,
    arguments: &[&str],
    input: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_divmid"))
        .env("DIVMID_CONFIG_DIR", no_profiles())
        .arg("--server")
        .arg(server)
        .env("DIVMID_TOKEN", token)
        .args(arguments)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("divmid runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("written");
    let output = child.wait_with_output().expect("divmid ends");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Opens a trader's account with the issuer's token and returns the printed token.
fn create_trader(server: &str, name: &str, tier: &str) -> String {
    let created = printed(
        server,
        Some(ISSUER_TOKEN),
        &[
            "issuer",
            "create-account",
            "--name",
            name,
            "--tier",
            tier,
            "--role",
            "trader",
        ],
    );
    created
        .lines()
        .find_map(|line| line.strip_prefix("api_token: "))
        .expect("a token is printed")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_runs_the_user_story() {
    user_story(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_runs_the_user_story_through_profiles() {
    user_story(true).await;
}

/// The user story, reaching the server by flags, or through profiles (one per account,
/// named with --profile, and no --server or token given).
async fn user_story(through_profiles: bool) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (server, running) = start(&directory.path().join("data")).await;
    let config = directory.path().join("config");
    let story = tokio::task::spawn_blocking(move || {
        if through_profiles {
            PROFILES.with(|profiles| *profiles.borrow_mut() = Some(config));
        }
        let issuer = Some(ISSUER_TOKEN);
        let token = create_trader(&server, "frank", "public");
        let trader = Some(token.as_str());
        printed(
            &server,
            issuer,
            &["issuer", "mint", "--amount", "500", "--key", "m"],
        );
        printed(
            &server,
            issuer,
            &["issuer", "set-price", "--tier", "public", "--price", "0.5"],
        );
        printed(
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
                "d",
            ],
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
        let ledger = printed(&server, trader, &["wallet", "ledger", "--page-size", "1"]);
        let newest = ledger.lines().next().unwrap_or_default();
        assert!(newest.contains(" GMT purchase "), "{ledger}");
        assert!(newest.ends_with("(b)"), "the entry names its key: {ledger}");
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

        // A second trader takes frank's offer; the market data commands show the trade.
        let token = create_trader(&server, "grace", "subscriber");
        let buyer = Some(token.as_str());
        printed(
            &server,
            buyer,
            &[
                "wallet",
                "deposit",
                "--source",
                "card",
                "--amount",
                "10",
                "--reference",
                "4111111111111111",
                "--key",
                "d",
            ],
        );
        let bought = printed(
            &server,
            buyer,
            &[
                "order",
                "place",
                "--side",
                "buy",
                "--type",
                "market",
                "--quantity",
                "4",
            ],
        );
        assert!(
            bought.contains("4.00 @ 0.9000 (LIQUIDITY_TAKER)"),
            "{bought}"
        );

        let ticker = printed(&server, None, &["market", "ticker"]);
        assert!(
            ticker.contains("last 0.9000, bid none, ask none; 24 h volume 4.00"),
            "{ticker}"
        );
        let candles = printed(&server, None, &["market", "candles"]);
        assert!(
            candles.contains("open 0.9000 high 0.9000 low 0.9000 close 0.9000 volume 4.00"),
            "{candles}"
        );
        let trades = printed(
            &server,
            None,
            &["market", "trades", "--from-seq", "0", "--limit", "1"],
        );
        assert!(
            trades.starts_with("trade 1 DVM-USD 4.00 @ 0.9000 taker SIDE_BUY seq "),
            "{trades}"
        );
        let updates = printed(
            &server,
            trader,
            &["order", "updates", "--from-seq", "0", "--limit", "3"],
        );
        let updates: Vec<&str> = updates.lines().collect();
        assert_eq!(updates.len(), 3, "{updates:?}");
        assert!(updates[0].contains("ORDER_STATUS_OPEN"), "{updates:?}");
        assert!(
            updates[1].contains("4.00 @ 0.9000 (LIQUIDITY_MAKER)"),
            "{updates:?}"
        );
        assert!(updates[2].contains("ORDER_STATUS_FILLED"), "{updates:?}");
        // Three bids: watching two levels still checks the checksum, which covers ten.
        for price in ["0.1", "0.2", "0.3"] {
            printed(
                &server,
                buyer,
                &[
                    "order",
                    "place",
                    "--side",
                    "buy",
                    "--price",
                    price,
                    "--quantity",
                    "1",
                ],
            );
        }
        let watched = printed(
            &server,
            None,
            &["market", "watch", "--depth", "2", "--messages", "1"],
        );
        let lines: Vec<&str> = watched.lines().collect();
        assert!(lines[0].starts_with("snapshot at seq "), "{watched}");
        assert_eq!(
            lines[1..3],
            [
                "  bid       0.3000           1.00",
                "  bid       0.2000           1.00"
            ],
            "{watched}"
        );
        assert!(
            lines[3].starts_with("  best bid 0.3000 x 1.00 | best ask none (checksum "),
            "{watched}"
        );
        assert!(lines[3].ends_with(" verified)"), "{watched}");
        assert_eq!(lines.len(), 4, "{watched}");
    });
    // The streaming commands wait for what they were asked to print: a server that never
    // sends it fails the test here rather than hanging it.
    tokio::time::timeout(std::time::Duration::from_secs(120), story)
        .await
        .expect("the story ends within two minutes")
        .expect("the story runs");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_pipes_its_clicks_in_and_the_holders_pool_tops_itself_up() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (server, running) = start(directory.path()).await;
    let story = tokio::task::spawn_blocking(move || {
        let issuer = Some(ISSUER_TOKEN);
        printed(
            &server,
            issuer,
            &["issuer", "mint", "--amount", "1000", "--key", "m"],
        );
        printed(
            &server,
            issuer,
            &["issuer", "set-price", "--tier", "public", "--price", "0.5"],
        );
        let prices = printed(&server, None, &["market", "issue-prices"]);
        assert!(
            prices.starts_with("TIER_PUBLIC: 0.500000 USD per DVM\n"),
            "{prices}"
        );
        let (holder_id, holder) = create_account(&server, "hal", "trader");
        let (service_id, service) = create_account(&server, "svc", "service");
        let holder = Some(holder.as_str());
        printed(
            &server,
            holder,
            &[
                "wallet",
                "deposit",
                "--source",
                "egold",
                "--amount",
                "20",
                "--reference",
                "123456",
                "--key",
                "d",
            ],
        );
        let (ok, _, error) = divmid(
            &server,
            holder,
            &["wallet", "auto-top-up", "--threshold", "1"],
        );
        assert!(
            !ok && error.contains("--target"),
            "a partial setting is refused: {error}"
        );
        printed(
            &server,
            holder,
            &[
                "wallet",
                "auto-top-up",
                "--threshold",
                "1",
                "--target",
                "10",
                "--max-price",
                "0.5",
                "--monthly-max-usd",
                "100",
            ],
        );
        printed(
            &server,
            holder,
            &[
                "wallet",
                "spend-limit",
                "--service",
                &service_id,
                "--daily-max",
                "3",
            ],
        );
        // Three good clicks, a malformed line and one beyond the spend limit.
        let clicks = format!(
            "{holder_id} 1 c1 home\n{holder_id} 1 c2\n{holder_id} 1\n{holder_id} 0.5 c3\n{holder_id} 1 c4\n"
        );
        let (ok, output, error) =
            divmid_with_input(&server, &service, &["charge", "--session"], &clicks);
        assert!(!ok, "two lines were not charged");
        let charged: Vec<&str> = output.lines().collect();
        assert_eq!(charged.len(), 3, "{output}");
        assert!(
            charged[0].starts_with("line 1: charged 1.000000 DVM (seq "),
            "{output}"
        );
        assert!(
            charged[2].starts_with("line 4: charged 0.500000 DVM"),
            "{output}"
        );
        assert!(
            error.contains("line 3: expected ACCOUNT AMOUNT KEY"),
            "{error}"
        );
        assert!(
            error.contains("line 5: FailedPrecondition: amount: spend limit"),
            "{error}"
        );
        assert!(error.contains("2 lines were not charged"), "{error}");
        let settings = printed(&server, holder, &["wallet", "auto-top-up"]);
        assert!(
            settings.contains("spent this month: 5.000000 USD"),
            "{settings}"
        );
        let limits = printed(&server, holder, &["wallet", "spend-limit"]);
        assert_eq!(
            limits.trim(),
            format!("service {service_id}: 3.000000 DVM a day, 2.500000 charged today")
        );
        let usage = printed(&server, holder, &["wallet", "usage"]);
        assert!(
            usage.contains(" top-up: 10.000000 DVM for 5.000000 USD (seq "),
            "{usage}"
        );
        assert!(
            usage.contains(&format!(" service {service_id}: 3 charges, 2.500000 DVM")),
            "{usage}"
        );
        let balances = printed(&server, holder, &["wallet", "balances"]);
        assert!(balances.contains("DVM: available 7.500000"), "{balances}");
    });
    tokio::time::timeout(std::time::Duration::from_secs(120), story)
        .await
        .expect("the story ends within two minutes")
        .expect("the story runs");
    running.stop().await;
}

/// Runs `divmid` with profiles kept in `config_dir`, no `--server` and no token in the
/// environment.
fn with_profiles(config_dir: &std::path::Path, arguments: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_divmid"))
        .env("DIVMID_CONFIG_DIR", config_dir)
        .env_remove("DIVMID_TOKEN")
        .env_remove("DIVMID_SERVER")
        .env_remove("DIVMID_PROFILE")
        .args(arguments)
        .output()
        .expect("divmid runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_keep_the_server_and_the_token_file_and_never_print_a_token() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (server, running) = start(&directory.path().join("data")).await;
    let config = directory.path().join("config");
    let (token_file, issuer_file) = (
        directory.path().join("pat.token"),
        directory.path().join("issuer.token"),
    );
    let story = tokio::task::spawn_blocking(move || {
        let (_, token) = create_account(&server, "pat", "trader");
        std::fs::write(&token_file, format!("{token}\n")).expect("written");
        std::fs::write(&issuer_file, ISSUER_TOKEN).expect("written");
        let run = |arguments: &[&str]| with_profiles(&config, arguments);

        let (ok, _, error) = run(&["profile", "use", "nowhere"]);
        assert!(!ok && error.contains("there are none"), "{error}");
        let (ok, _, error) = run(&["--server", &server, "wallet", "balances"]);
        assert!(!ok, "no profile, no token");
        assert!(
            error.contains("no token was sent: save one in a profile"),
            "{error}"
        );
        let token_path = token_file.to_str().expect("UTF-8");
        let (ok, saved, error) = run(&[
            "profile",
            "add",
            "pat",
            "--server",
            &server,
            "--token-file",
            token_path,
        ]);
        assert!(ok, "{error}");
        assert!(saved.contains("profile pat saved and in use"), "{saved}");
        let issuer_path = issuer_file.to_str().expect("UTF-8");
        let (ok, _, error) = run(&[
            "profile",
            "add",
            "issuer",
            "--server",
            &server,
            "--token-file",
            issuer_path,
        ]);
        assert!(ok, "{error}");
        let (ok, _, error) = run(&["--server", &server, "--profile", "nobody", "market", "list"]);
        assert!(
            !ok && error.contains("known profiles: issuer, pat"),
            "{error}"
        );
        let (_, listed, _) = run(&["profile", "list"]);
        assert!(
            listed.contains(&format!("* pat: {server} (token from ")),
            "{listed}"
        );
        assert!(listed.contains(&format!("  issuer: {server}")), "{listed}");
        assert!(
            !listed.contains(&token) && !listed.contains(ISSUER_TOKEN),
            "{listed}"
        );
        let file = config.join("profiles.toml");
        let kept = std::fs::read_to_string(&file).expect("kept");
        assert!(
            !kept.contains(&token),
            "the file keeps the path, not the token"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Calls with neither --server nor a token: the profile in use gives both.
        let (ok, balances, error) = run(&["wallet", "balances"]);
        assert!(ok, "{error}");
        assert!(balances.contains("USD: available 0.000000"), "{balances}");
        let (ok, minted, error) = run(&[
            "--profile",
            "issuer",
            "issuer",
            "mint",
            "--amount",
            "5",
            "--key",
            "p",
        ]);
        assert!(ok, "{error}");
        assert!(minted.contains("total supply: 5.000000 DVM"), "{minted}");
        let (ok, _, error) = run(&["issuer", "supply"]);
        assert!(
            !ok && error.contains("PermissionDenied"),
            "pat may not: {error}"
        );
        assert!(
            error.contains("check the profile in use"),
            "what to do: {error}"
        );
        run(&["profile", "use", "issuer"]);
        let (ok, supply, error) = run(&["issuer", "supply"]);
        assert!(ok && supply.contains("minted: 5.000000"), "{supply}{error}");
        let (ok, _, error) = run(&["--profile", "typo", "wallet", "balances"]);
        assert!(
            !ok && error.contains("known profiles: issuer, pat"),
            "{error}"
        );
        let (_, listed, _) = run(&["--json", "profile", "list"]);
        let listed: Vec<serde_json::Value> = listed
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON object a line"))
            .collect();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (&listed[0]["name"], &listed[0]["active"]),
            (&"issuer".into(), &true.into())
        );
        assert_eq!(listed[1]["server"], server.as_str());
        assert!(listed[1]["token_file"]
            .as_str()
            .is_some_and(|file| file.ends_with("pat.token")));
        run(&["profile", "remove", "issuer"]);
        let (_, listed, _) = run(&["profile", "list"]);
        assert!(
            !listed.contains('*') && listed.contains("  pat:"),
            "{listed}"
        );
    });
    tokio::time::timeout(std::time::Duration::from_secs(120), story)
        .await
        .expect("the story ends within two minutes")
        .expect("the story runs");
    running.stop().await;
}

/// Runs `divmid --output json` and parses each line it printed as a JSON object.
fn json_lines(server: &str, token: Option<&str>, arguments: &[&str]) -> Vec<serde_json::Value> {
    let mut with_json = vec!["--output", "json"];
    with_json.extend_from_slice(arguments);
    printed(server, token, &with_json)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}")))
        .collect()
}

/// The one JSON object `divmid --output json` printed.
fn json(server: &str, token: Option<&str>, arguments: &[&str]) -> serde_json::Value {
    let mut lines = json_lines(server, token, arguments);
    assert_eq!(lines.len(), 1, "one answer: {lines:?}");
    lines.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_json_with_the_protos_field_names() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (server, running) = start(directory.path()).await;
    let story = tokio::task::spawn_blocking(move || {
        let issuer = Some(ISSUER_TOKEN);
        let created = json(
            &server,
            issuer,
            &[
                "issuer",
                "create-account",
                "--name",
                "jo",
                "--tier",
                "public",
                "--role",
                "trader",
            ],
        );
        let token = created["api_token"]
            .as_str()
            .expect("api_token")
            .to_string();
        assert!(
            created["account_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{created}"
        );
        let trader = Some(token.as_str());
        let minted = json(
            &server,
            issuer,
            &["issuer", "mint", "--amount", "500", "--key", "m"],
        );
        assert_eq!(minted["total_supply"], "500.000000");
        json(
            &server,
            issuer,
            &["issuer", "set-price", "--tier", "public", "--price", "0.5"],
        );
        let supply = json(&server, issuer, &["issuer", "supply"]);
        assert_eq!(
            (&supply["minted"], &supply["treasury"]),
            (&"500.000000".into(), &"500.000000".into())
        );
        let deposited = json(
            &server,
            trader,
            &[
                "wallet",
                "deposit",
                "--source",
                "egold",
                "--amount",
                "20",
                "--reference",
                "123456",
                "--key",
                "d",
            ],
        );
        assert_eq!(deposited["balance"]["asset"], "USD");
        assert_eq!(deposited["balance"]["available"], "20.000000");
        let bought = json(
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
        assert_eq!(bought["cost"], "5.000000");
        assert_eq!(bought["balances"].as_array().map(Vec::len), Some(2));
        let placed = json(
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
                "--client-order-id",
                "s1",
            ],
        );
        let order = &placed["order"];
        assert_eq!(order["side"], "SIDE_SELL");
        assert_eq!(order["type"], "ORDER_TYPE_LIMIT");
        assert_eq!(
            (&order["price"], &order["quantity"]),
            (&"0.9000".into(), &"4.00".into())
        );
        assert_eq!(order["status"], "ORDER_STATUS_OPEN");
        assert_eq!(order["client_order_id"], "s1");
        let listed = json(&server, trader, &["order", "list", "--open-only"]);
        assert_eq!(listed["orders"][0]["order_id"], order["order_id"]);
        let book = json(&server, None, &["market", "book"]);
        assert_eq!(book["asks"][0]["price"], "0.9000");
        assert_eq!(book["asks"][0]["quantity"], "4.00");
        let ledger = json(&server, trader, &["wallet", "ledger", "--page-size", "2"]);
        assert_eq!(ledger["entries"][0]["kind"], "order_hold");
        assert!(ledger["next_page_token"]
            .as_str()
            .is_some_and(|token| !token.is_empty()));
        let canceled = json(
            &server,
            trader,
            &["order", "cancel", "--client-order-id", "s1"],
        );
        assert_eq!(canceled["order"]["status"], "ORDER_STATUS_CANCELED");
        let markets = json(&server, None, &["market", "list"]);
        assert_eq!(markets["markets"][0]["name"], "DVM-USD");
        let prices = json(&server, None, &["market", "issue-prices"]);
        assert_eq!(prices["prices"][0]["tier"], "TIER_PUBLIC");
        assert_eq!(prices["prices"][0]["price"], "0.500000");
        let updates = json_lines(
            &server,
            trader,
            &["order", "updates", "--from-seq", "0", "--limit", "2"],
        );
        assert_eq!(updates.len(), 2, "one line per streamed message");
        assert_eq!(updates[0]["order"]["status"], "ORDER_STATUS_OPEN");
        assert_eq!(updates[1]["order"]["status"], "ORDER_STATUS_CANCELED");

        // A trade: the taker's fill, the ticker, the candles, the trade stream and a
        // watched book, each as JSON.
        let (_, maker) = create_account(&server, "mo", "trader");
        let maker = Some(maker.as_str());
        json(
            &server,
            maker,
            &[
                "wallet",
                "deposit",
                "--source",
                "egold",
                "--amount",
                "10",
                "--reference",
                "123456",
                "--key",
                "d",
            ],
        );
        json(
            &server,
            maker,
            &[
                "wallet",
                "buy",
                "--quantity",
                "5",
                "--max-price",
                "0.5",
                "--key",
                "b",
            ],
        );
        json(
            &server,
            maker,
            &[
                "order",
                "place",
                "--side",
                "sell",
                "--price",
                "0.8",
                "--quantity",
                "3",
            ],
        );
        let taken = json(
            &server,
            trader,
            &[
                "order",
                "place",
                "--side",
                "buy",
                "--price",
                "0.8",
                "--quantity",
                "2",
            ],
        );
        assert_eq!(taken["order"]["status"], "ORDER_STATUS_FILLED");
        assert_eq!(taken["fills"][0]["liquidity"], "LIQUIDITY_TAKER");
        assert_eq!(
            (&taken["fills"][0]["price"], &taken["fills"][0]["quantity"]),
            (&"0.8000".into(), &"2.00".into())
        );
        let ticker = json(&server, None, &["market", "ticker"]);
        assert_eq!(
            (&ticker["last_price"], &ticker["volume_24h"]),
            (&"0.8000".into(), &"2.00".into())
        );
        let candles = json(&server, None, &["market", "candles"]);
        assert_eq!(candles["candles"][0]["close"], "0.8000");
        let trades = json_lines(
            &server,
            None,
            &["market", "trades", "--from-seq", "0", "--limit", "1"],
        );
        assert_eq!(
            (&trades[0]["price"], &trades[0]["taker_side"]),
            (&"0.8000".into(), &"SIDE_BUY".into())
        );
        let watched = json_lines(&server, None, &["market", "watch", "--messages", "1"]);
        assert_eq!(watched[0]["snapshot"]["asks"][0]["price"], "0.8000");
        assert_eq!(watched[0]["snapshot"]["asks"][0]["quantity"], "1.00");
    });
    tokio::time::timeout(std::time::Duration::from_secs(120), story)
        .await
        .expect("the story ends within two minutes")
        .expect("the story runs");
    running.stop().await;
}

/// Waits until what the terminal printed holds `expected`, or fails naming what it holds.
#[cfg(unix)]
fn wait_for(printed: &std::sync::Mutex<String>, expected: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = printed.lock().expect("not poisoned").clone();
        if seen.contains(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for {expected:?}; the terminal shows {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_completes_a_subcommand_runs_it_and_keeps_it_in_its_history() {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (server, running) = start(&directory.path().join("data")).await;
    let config = directory.path().join("config");
    let story = tokio::task::spawn_blocking(move || {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors it opened into the integers given, and
        // reads only the window size; the descriptors are owned below and closed once.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(opened, 0, "a pseudo-terminal opens");
        // SAFETY: both descriptors were just opened by openpty and are owned only here.
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                OwnedFd::from_raw_fd(slave),
            )
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_divmid"))
            .env("DIVMID_CONFIG_DIR", &config)
            .env("TERM", "xterm")
            .env_remove("DIVMID_TOKEN")
            .args(["--server", &server, "shell"])
            .stdin(slave.try_clone().expect("a descriptor"))
            .stdout(slave.try_clone().expect("a descriptor"))
            .stderr(slave)
            .spawn()
            .expect("divmid shell runs");
        let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let printed = std::sync::Arc::clone(&printed);
            let mut master = master.try_clone().expect("a descriptor");
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                // Ends with an error once the shell has exited and the terminal closed.
                while let Ok(read @ 1..) = master.read(&mut buffer) {
                    let text = String::from_utf8_lossy(&buffer[..read]);
                    printed.lock().expect("not poisoned").push_str(&text);
                }
            })
        };
        let mut terminal = master;
        wait_for(&printed, "divmid> ");
        terminal.write_all(b"market li\t").expect("typed");
        wait_for(&printed, "market list");
        terminal.write_all(b"\r").expect("typed");
        wait_for(&printed, "DVM-USD: DVM in USD");
        terminal.write_all(b"exit\r").expect("typed");
        let status = child.wait().expect("the shell ends");
        assert!(status.success(), "exit leaves cleanly");
        drop(terminal);
        let _ = reader.join();
        let history = std::fs::read_to_string(config.join("history")).expect("a history file");
        assert!(
            history.lines().any(|line| line.trim() == "market list"),
            "{history:?}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(config.join("history"))
                .expect("kept")
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
    });
    tokio::time::timeout(std::time::Duration::from_secs(120), story)
        .await
        .expect("the shell ends within two minutes")
        .expect("the shell story runs");
    running.stop().await;
}
