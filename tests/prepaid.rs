//! The prepaid pool over real gRPC: a service charges clicks through a session while the
//! holder's pool tops itself up, the monthly cap and spend limits refuse what passes
//! them, usage adds up to the ledger's charges (after a restart too), and the issue
//! prices' history is public.

mod common;

use common::{clients, create, Clients, Server, ISSUER_TOKEN};
use divmid::api::proto;
use proto::charge_session_response::Result as ChargeResult;
use tonic::Code;

/// The holder's available `(USD, DVM)`.
async fn available(holder: &mut Clients) -> (String, String) {
    let (usd, _, dvm, _) = common::balances(holder).await;
    (usd, dvm)
}

/// `count` charges of `amount` to `holder_id`, keyed `PREFIX-0`, `PREFIX-1`, …
fn clicks(holder_id: &str, prefix: &str, count: usize, amount: &str) -> Vec<proto::ChargeRequest> {
    (0..count)
        .map(|index| charge_request(holder_id, amount, &format!("{prefix}-{index}")))
        .collect()
}

/// A holder with `usd` deposited and no divmids, and a service; divmids at 1 USD.
async fn holder_and_service(
    channel: &tonic::transport::Channel,
    usd: &str,
) -> (String, Clients, Clients) {
    common::process::mint_at_one_dollar(channel, ISSUER_TOKEN, "100000").await;
    let mut issuer = clients(channel, Some(ISSUER_TOKEN));
    let (holder_id, holder_token) =
        create(&mut issuer, "hal", proto::Tier::Public, proto::Role::Trader).await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut holder = clients(channel, Some(&holder_token));
    holder
        .wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: usd.into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "fund".into(),
        })
        .await
        .expect("deposited");
    (holder_id, holder, clients(channel, Some(&service_token)))
}

fn charge_request(account_id: &str, amount: &str, key: &str) -> proto::ChargeRequest {
    proto::ChargeRequest {
        account_id: account_id.into(),
        amount: amount.into(),
        idempotency_key: key.into(),
        memo: "click".into(),
    }
}

/// Sends the charges through one session and returns each answer, in order.
async fn session(service: &mut Clients, charges: Vec<proto::ChargeRequest>) -> Vec<ChargeResult> {
    let requests: Vec<_> = charges
        .into_iter()
        .enumerate()
        .map(|(index, charge)| proto::ChargeSessionRequest {
            request_id: index as u64,
            charge: Some(charge),
        })
        .collect();
    let count = requests.len();
    let mut responses = service
        .metering
        .charge_session(tokio_stream::iter(requests))
        .await
        .expect("a session")
        .into_inner();
    let mut results = Vec::new();
    while let Some(response) = responses.message().await.expect("a response") {
        assert_eq!(response.request_id, results.len() as u64, "in order");
        results.push(response.result.expect("a result"));
    }
    assert_eq!(results.len(), count);
    results
}

fn set_top_up(threshold: &str, target: &str, monthly_max_usd: &str) -> proto::SetAutoTopUpRequest {
    proto::SetAutoTopUpRequest {
        enabled: true,
        threshold: threshold.into(),
        target: target.into(),
        max_price: "1".into(),
        monthly_max_usd: monthly_max_usd.into(),
    }
}

#[tokio::test]
async fn a_pool_tops_itself_up_while_a_service_charges_clicks_through_a_session() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let (holder_id, mut holder, mut service) = holder_and_service(&channel, "100").await;
    holder
        .wallet
        .set_auto_top_up(set_top_up("10", "50", "200"))
        .await
        .expect("set");

    // 30 clicks of 2 DVM on an empty pool: the first buys 50 DVM, the 21st finds 10 left
    // (a charge would leave 8, below the threshold) and buys 40.
    let charges = clicks(&holder_id, "click", 30, "2");
    let twenty_first = charges[20].idempotency_key.clone();
    let results = session(&mut service, charges).await;
    let seqs: Vec<u64> = results
        .iter()
        .map(|result| match result {
            ChargeResult::Charged(charged) => charged.seq,
            ChargeResult::Error(error) => panic!("refused: {}", error.message),
        })
        .collect();
    assert_eq!(
        available(&mut holder).await,
        ("10.000000".into(), "30.000000".into())
    );
    let top_up = holder
        .wallet
        .get_auto_top_up(proto::GetAutoTopUpRequest {})
        .await
        .expect("settings")
        .into_inner();
    assert_eq!(
        (top_up.enabled, top_up.target.as_str()),
        (true, "50.000000")
    );
    assert_eq!(top_up.month_spent_usd, "90.000000");
    let entries = holder
        .wallet
        .list_ledger_entries(proto::ListLedgerEntriesRequest::default())
        .await
        .expect("entries")
        .into_inner()
        .entries;
    let top_ups: Vec<(&str, &str)> = entries
        .iter()
        .filter(|entry| entry.kind == "auto_top_up")
        .map(|entry| (entry.asset.as_str(), entry.available_change.as_str()))
        .collect();
    assert_eq!(
        top_ups,
        vec![
            ("USD", "-40.000000"),
            ("DVM", "40.000000"),
            ("USD", "-50.000000"),
            ("DVM", "50.000000")
        ],
        "newest first"
    );
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let supply = issuer
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect("supply")
        .into_inner();
    assert_eq!(supply.spent, "60.000000");
    assert_eq!(supply.circulating, "30.000000");

    // A retry of the 21st click, which topped up, applies nothing again.
    let retried = session(
        &mut service,
        vec![charge_request(&holder_id, "2", &twenty_first)],
    )
    .await;
    assert!(matches!(&retried[0], ChargeResult::Charged(charged) if charged.seq == seqs[20]));
    assert_eq!(
        available(&mut holder).await,
        ("10.000000".into(), "30.000000".into())
    );

    // A cap of 100 USD: a charge leaving 5 DVM would top up 20 more (110 USD this month),
    // so it is paid from the pool alone; the next one the pool cannot pay is refused.
    holder
        .wallet
        .set_auto_top_up(set_top_up("10", "50", "100"))
        .await
        .expect("set");
    let results = session(
        &mut service,
        vec![
            charge_request(&holder_id, "25", "big-1"),
            charge_request(&holder_id, "6", "big-2"),
        ],
    )
    .await;
    assert!(matches!(results[0], ChargeResult::Charged(_)));
    match &results[1] {
        ChargeResult::Error(error) => {
            assert_eq!(error.code, Code::FailedPrecondition as i32);
            assert!(
                error.message.contains("monthly_max_usd"),
                "{}",
                error.message
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        available(&mut holder).await,
        ("10.000000".into(), "5.000000".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn a_spend_limit_stops_a_service_at_the_holders_daily_maximum() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let (holder_id, mut holder, mut service) = holder_and_service(&channel, "100").await;
    holder
        .wallet
        .buy_divmids(proto::BuyDivmidsRequest {
            quantity: "50".into(),
            max_price: "1".into(),
            idempotency_key: "buy".into(),
        })
        .await
        .expect("bought");
    let listed = holder
        .wallet
        .list_spend_limits(proto::ListSpendLimitsRequest {})
        .await;
    assert!(listed.expect("listed").into_inner().limits.is_empty());
    // The service's id: the account created right after the holder.
    let service_id = (holder_id.parse::<u64>().expect("an id") + 1).to_string();
    holder
        .wallet
        .set_spend_limit(proto::SetSpendLimitRequest {
            service_account_id: service_id.clone(),
            daily_max: "5".into(),
        })
        .await
        .expect("set");
    service
        .metering
        .charge(charge_request(&holder_id, "3", "one"))
        .await
        .expect("within the limit");
    let refused = service
        .metering
        .charge(charge_request(&holder_id, "3", "two"))
        .await
        .expect_err("beyond the limit");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("spend limit"),
        "{}",
        refused.message()
    );
    assert_eq!(
        available(&mut holder).await.1,
        "47.000000",
        "only the first charge"
    );
    let limits = holder
        .wallet
        .list_spend_limits(proto::ListSpendLimitsRequest {})
        .await
        .expect("listed")
        .into_inner()
        .limits;
    assert_eq!(limits.len(), 1);
    assert_eq!(
        (
            limits[0].service_account_id.as_str(),
            limits[0].daily_max.as_str(),
            limits[0].spent_today.as_str()
        ),
        (service_id.as_str(), "5.000000", "3.000000")
    );
    // Lifted: the same charge goes through.
    holder
        .wallet
        .set_spend_limit(proto::SetSpendLimitRequest {
            service_account_id: service_id.clone(),
            daily_max: String::new(),
        })
        .await
        .expect("removed");
    service
        .metering
        .charge(charge_request(&holder_id, "3", "two"))
        .await
        .expect("no limit");
    server.stop().await;
}

#[tokio::test]
async fn bad_settings_are_refused_by_name_and_change_nothing() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let (_, mut holder, mut service) = holder_and_service(&channel, "100").await;
    holder
        .wallet
        .set_auto_top_up(set_top_up("1", "2", "3"))
        .await
        .expect("set");
    let cases = [
        (
            set_top_up("abc", "2", "3"),
            Code::InvalidArgument,
            "threshold",
        ),
        (
            set_top_up("5", "2", "3"),
            Code::InvalidArgument,
            "threshold",
        ),
        (set_top_up("1", "0", "3"), Code::InvalidArgument, "target"),
        (
            set_top_up("1", "2", "0"),
            Code::InvalidArgument,
            "monthly_max_usd",
        ),
        (
            proto::SetAutoTopUpRequest {
                max_price: "1e3".into(),
                ..set_top_up("1", "2", "3")
            },
            Code::InvalidArgument,
            "max_price",
        ),
    ];
    for (request, code, field) in cases {
        let refused = holder
            .wallet
            .set_auto_top_up(request)
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), code, "{}", refused.message());
        assert!(
            refused.message().starts_with(field),
            "{}",
            refused.message()
        );
    }
    let kept = holder
        .wallet
        .get_auto_top_up(proto::GetAutoTopUpRequest {})
        .await
        .expect("settings")
        .into_inner();
    assert_eq!(
        (kept.threshold.as_str(), kept.target.as_str()),
        ("1.000000", "2.000000")
    );
    for (service_account_id, code) in [
        ("x", Code::InvalidArgument),
        ("999", Code::NotFound),
        ("1", Code::InvalidArgument),
    ] {
        let refused = holder
            .wallet
            .set_spend_limit(proto::SetSpendLimitRequest {
                service_account_id: service_account_id.into(),
                daily_max: "1".into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), code, "{}", refused.message());
        assert!(
            refused.message().starts_with("service_account_id"),
            "{}",
            refused.message()
        );
    }
    let usage = |interval: proto::UsageInterval, from_ms: u64, to_ms: u64, page_size: u32| {
        proto::GetUsageRequest {
            from_ms,
            to_ms,
            interval: interval as i32,
            page_size,
            page_token: String::new(),
        }
    };
    for (request, field) in [
        (
            usage(proto::UsageInterval::Unspecified, 0, 0, 0),
            "interval",
        ),
        (usage(proto::UsageInterval::Hour, 10, 10, 0), "from_ms"),
        (usage(proto::UsageInterval::Hour, 0, 0, 501), "page_size"),
        (usage(proto::UsageInterval::Day, 0, u64::MAX, 0), "to_ms"),
        (
            usage(proto::UsageInterval::Hour, u64::MAX - 1, u64::MAX, 0),
            "from_ms",
        ),
        (
            proto::GetUsageRequest {
                page_token: "nonsense".into(),
                ..usage(proto::UsageInterval::Hour, 0, 0, 0)
            },
            "page_token",
        ),
    ] {
        let refused = holder.wallet.get_usage(request).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(
            refused.message().starts_with(field),
            "{}",
            refused.message()
        );
    }
    let refused = service
        .metering
        .get_service_usage(proto::GetServiceUsageRequest::default())
        .await
        .expect_err("no interval");
    assert!(
        refused.message().starts_with("interval"),
        "{}",
        refused.message()
    );
    server.stop().await;
}

/// Usage of one caller, every page, as `(other party, charges, amount in micro-DVM)`
/// summed over the intervals, and its top-ups' count.
async fn holder_usage(
    holder: &mut Clients,
    interval: proto::UsageInterval,
) -> (Vec<(String, u64, u64)>, usize) {
    let mut sums: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut top_ups = 0;
    let mut page_token = String::new();
    loop {
        let page = holder
            .wallet
            .get_usage(proto::GetUsageRequest {
                from_ms: 0,
                to_ms: 0,
                interval: interval as i32,
                page_size: 2,
                page_token,
            })
            .await
            .expect("usage")
            .into_inner();
        top_ups += page.top_ups.len();
        for row in page.rows {
            let sum = sums.entry(row.service_account_id).or_default();
            sum.0 += row.charges;
            sum.1 += micros(&row.amount);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    (
        sums.into_iter()
            .map(|(id, (count, amount))| (id, count, amount))
            .collect(),
        top_ups,
    )
}

fn micros(text: &str) -> u64 {
    let (whole, fraction) = text.split_once('.').expect("six places");
    whole.parse::<u64>().expect("digits") * 1_000_000 + fraction.parse::<u64>().expect("digits")
}

#[tokio::test]
async fn usage_adds_up_to_the_ledgers_charges_and_survives_a_restart() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let (holder_id, mut holder, mut first) = holder_and_service(&channel, "1000").await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, second_token) = create(
        &mut issuer,
        "svc2",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut second = clients(&channel, Some(&second_token));
    holder
        .wallet
        .set_auto_top_up(set_top_up("1", "5", "1000"))
        .await
        .expect("set");
    session(&mut first, clicks(&holder_id, "a", 40, "0.25")).await;
    session(&mut second, clicks(&holder_id, "b", 7, "0.125")).await;
    first
        .metering
        .charge(charge_request(&holder_id, "0.5", "a-unary"))
        .await
        .expect("charged");

    // The ledger's charges and top-ups, the truth usage must agree with.
    let entries = holder
        .wallet
        .list_ledger_entries(proto::ListLedgerEntriesRequest {
            page_size: 1_000,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner()
        .entries;
    let charges: Vec<u64> = entries
        .iter()
        .filter(|entry| entry.kind == "charge")
        .map(|entry| micros(entry.available_change.trim_start_matches('-')))
        .collect();
    let top_up_entries = entries
        .iter()
        .filter(|entry| entry.kind == "auto_top_up" && entry.asset == "DVM")
        .count();
    assert_eq!(charges.len(), 48);
    assert!(top_up_entries > 1, "the pool topped up");
    let expected = |first_id: &str, second_id: &str| {
        vec![
            (first_id.to_string(), 41, 10_500_000),
            (second_id.to_string(), 7, 875_000),
        ]
    };
    let (rows, top_ups) = holder_usage(&mut holder, proto::UsageInterval::Hour).await;
    assert_eq!(
        rows.iter().map(|row| row.2).sum::<u64>(),
        charges.iter().sum::<u64>()
    );
    let holder_number: u64 = holder_id.parse().expect("an id");
    let (first_id, second_id) = (
        (holder_number + 1).to_string(),
        (holder_number + 2).to_string(),
    );
    assert_eq!(rows, expected(&first_id, &second_id));
    assert_eq!(top_ups, top_up_entries);
    let (daily, _) = holder_usage(&mut holder, proto::UsageInterval::Day).await;
    assert_eq!(daily, rows);
    let service_rows = first
        .metering
        .get_service_usage(proto::GetServiceUsageRequest {
            from_ms: 0,
            to_ms: 0,
            interval: proto::UsageInterval::Day as i32,
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("usage")
        .into_inner()
        .rows;
    let summed: (u64, u64) = service_rows.iter().fold((0, 0), |(count, amount), row| {
        assert_eq!(row.account_id, holder_id, "only the holder was charged");
        (count + row.charges, amount + micros(&row.amount))
    });
    assert_eq!(summed, (41, 10_500_000));

    server.stop().await;
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut holder = holder.on(&channel);
    assert_eq!(
        holder_usage(&mut holder, proto::UsageInterval::Hour).await,
        (expected(&first_id, &second_id), top_up_entries),
        "rebuilt from the journal"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_issue_prices_and_every_change_are_public() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut market_data = proto::market_data_client::MarketDataClient::new(channel.clone());
    let empty = market_data
        .get_issue_prices(proto::GetIssuePricesRequest {})
        .await
        .expect("answered")
        .into_inner();
    assert!(empty.prices.is_empty() && empty.changes.is_empty());
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    for (tier, price) in [
        (proto::Tier::Public, "0.6"),
        (proto::Tier::Subscriber, "0.5"),
        (proto::Tier::Public, "0.6500015"),
    ] {
        issuer
            .issuer
            .set_issue_price(proto::SetIssuePriceRequest {
                tier: tier as i32,
                price: price.into(),
            })
            .await
            .expect("set");
    }
    let prices = market_data
        .get_issue_prices(proto::GetIssuePricesRequest {})
        .await
        .expect("answered")
        .into_inner();
    let now: Vec<(i32, &str)> = prices
        .prices
        .iter()
        .map(|now| (now.tier, now.price.as_str()))
        .collect();
    assert_eq!(
        now,
        vec![
            (proto::Tier::Public as i32, "0.6500015"),
            (proto::Tier::Subscriber as i32, "0.500000")
        ]
    );
    let changes: Vec<(i32, &str)> = prices
        .changes
        .iter()
        .map(|change| (change.tier, change.price.as_str()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (proto::Tier::Public as i32, "0.600000"),
            (proto::Tier::Subscriber as i32, "0.500000"),
            (proto::Tier::Public as i32, "0.6500015")
        ]
    );
    assert!(prices
        .changes
        .windows(2)
        .all(|pair| pair[0].seq < pair[1].seq && pair[0].time_ms <= pair[1].time_ms));
    server.stop().await;
}

#[tokio::test]
async fn a_long_ledger_comes_in_pages_that_fit_the_message_limit() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let (holder_id, mut holder, mut service) = holder_and_service(&channel, "100").await;
    holder
        .wallet
        .set_auto_top_up(set_top_up("1", "50", "100"))
        .await
        .expect("set");
    session(&mut service, clicks(&holder_id, "click", 1_000, "0.01")).await;
    let mut seqs = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = holder
            .wallet
            .list_ledger_entries(proto::ListLedgerEntriesRequest {
                page_size: 1_000,
                page_token,
            })
            .await
            .expect("a page within the message limit")
            .into_inner();
        pages += 1;
        seqs.extend(
            page.entries
                .iter()
                .filter(|entry| entry.kind == "charge")
                .map(|entry| entry.seq),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(
        pages > 1,
        "1,000 entries of about 80 bytes do not fit 64 KiB"
    );
    assert_eq!(seqs.len(), 1_000, "every charge once");
    assert!(
        seqs.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first, no repeat"
    );
    server.stop().await;
}
