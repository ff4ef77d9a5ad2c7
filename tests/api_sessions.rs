//! Order and charge sessions answer every command in order, retries under the same
//! idempotency key or client order id apply once, and a session whose client reads no
//! answers is held back rather than buffered.

mod common;

use std::time::{Duration, Instant};

use common::{
    balances, clients, create, funded_traders, limit, order_session, owned, Clients, Server,
    ISSUER_TOKEN,
};
use divmid::api::proto::{self};
use tonic::Code;

#[tokio::test]
async fn an_order_session_answers_every_command_in_order() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["erin"], "500", "100").await;
    let mut erin = traders.remove(0);
    // 200 resting orders on both sides, one malformed command in the middle, then a
    // cancel-all.
    let mut requests = Vec::new();
    for index in 0..200u64 {
        let (side, price) = if index % 2 == 0 {
            (proto::Side::Buy, format!("0.{:04}", 4_000 + index))
        } else {
            (proto::Side::Sell, format!("0.{:04}", 6_000 + index))
        };
        let place = if index == 100 {
            limit(side, "-1", "1")
        } else {
            limit(side, &price, "0.5")
        };
        requests.push(proto::OrderSessionRequest {
            request_id: index,
            command: Some(proto::order_session_request::Command::Place(place)),
        });
    }
    requests.push(proto::OrderSessionRequest {
        request_id: 999,
        command: Some(proto::order_session_request::Command::CancelAll(
            proto::CancelAllOrdersRequest {
                market: String::new(),
            },
        )),
    });
    let mut responses = order_session(&mut erin, requests.into_iter()).await;
    let mut seen = Vec::new();
    while let Some(response) = responses.message().await.expect("a response") {
        seen.push(response);
        if seen.len() == 201 {
            break;
        }
    }
    let ids: Vec<u64> = seen.iter().map(|response| response.request_id).collect();
    let mut expected: Vec<u64> = (0..200).collect();
    expected.push(999);
    assert_eq!(ids, expected, "answers come in command order");
    use proto::order_session_response::Result as SessionResult;
    match &seen[100].result {
        Some(SessionResult::Error(error)) => {
            assert_eq!(error.code, Code::InvalidArgument as i32);
            assert!(error.message.starts_with("price: "), "{}", error.message);
        }
        other => panic!("the malformed command got {other:?}"),
    }
    assert!(seen[..100]
        .iter()
        .all(|response| matches!(response.result, Some(SessionResult::Placed(_)))));
    match &seen[200].result {
        Some(SessionResult::CanceledAll(canceled)) => assert_eq!(canceled.canceled_count, 199),
        other => panic!("cancel-all got {other:?}"),
    }
    assert_eq!(
        balances(&mut erin).await,
        owned(("400.000000", "0.000000", "100.000000", "0.000000"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_charge_session_answers_every_charge_in_order_and_once_per_key() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    common::process::mint_at_one_dollar(&channel, ISSUER_TOKEN, "1000").await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (holder_id, holder_token) =
        create(&mut issuer, "hal", proto::Tier::Public, proto::Role::Trader).await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut holder = clients(&channel, Some(&holder_token));
    common::fund(&mut holder, "hal", "10", "1").await;
    // 300 clicks of a thousandth, one malformed amount, and a retry of the first key.
    let charge = |request_id: u64, amount: &str, key: String| proto::ChargeSessionRequest {
        request_id,
        charge: Some(proto::ChargeRequest {
            account_id: holder_id.clone(),
            amount: amount.into(),
            idempotency_key: key,
            memo: "click".into(),
        }),
    };
    let mut requests: Vec<_> = (0..300)
        .map(|index| charge(index, "0.001", format!("click-{index}")))
        .collect();
    requests.push(charge(300, "-1", "bad".into()));
    requests.push(charge(301, "0.001", "click-0".into()));
    let mut service = clients(&channel, Some(&service_token));
    let mut responses = service
        .metering
        .charge_session(tokio_stream::iter(requests))
        .await
        .expect("a session")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(response) = responses.message().await.expect("a response") {
        seen.push(response);
    }
    let ids: Vec<u64> = seen.iter().map(|response| response.request_id).collect();
    assert_eq!(
        ids,
        (0..302).collect::<Vec<_>>(),
        "answered in order, each once"
    );
    use proto::charge_session_response::Result as ChargeResult;
    let charged_seq = |index: usize| match &seen[index].result {
        Some(ChargeResult::Charged(charged)) => {
            assert_eq!(charged.amount, "0.001000");
            charged.seq
        }
        other => panic!("charge {index} got {other:?}"),
    };
    let seqs: Vec<u64> = (0..300).map(charged_seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "committed in order"
    );
    match &seen[300].result {
        Some(ChargeResult::Error(error)) => {
            assert_eq!(error.code, Code::InvalidArgument as i32);
            assert!(error.message.starts_with("amount: "), "{}", error.message);
        }
        other => panic!("the malformed charge got {other:?}"),
    }
    assert_eq!(
        charged_seq(301),
        seqs[0],
        "a retried key answers the original seq"
    );
    assert_eq!(
        balances(&mut holder).await,
        owned(("9.000000", "0.000000", "0.700000", "0.000000")),
        "300 thousandths charged once each"
    );
    server.stop().await;
}

#[tokio::test]
async fn retries_with_the_same_key_or_client_order_id_apply_once() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (henry_id, token) = create(
        &mut issuer,
        "henry",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut henry = clients(&channel, Some(&token));
    let mut service = clients(&channel, Some(&service_token));
    let mint = proto::MintRequest {
        amount: "1000".into(),
        memo: String::new(),
        idempotency_key: "m".into(),
    };
    for _ in 0..3 {
        let minted = issuer
            .issuer
            .mint(mint.clone())
            .await
            .expect("minted")
            .into_inner();
        assert_eq!(minted.total_supply, "1000.000000");
    }
    let mut other = mint.clone();
    other.amount = "5".into();
    assert_eq!(
        issuer.issuer.mint(other).await.expect_err("reused").code(),
        Code::AlreadyExists
    );
    issuer
        .issuer
        .set_issue_price(proto::SetIssuePriceRequest {
            tier: proto::Tier::Public as i32,
            price: "1".into(),
        })
        .await
        .expect("priced");
    henry
        .wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: "100".into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "d".into(),
        })
        .await
        .expect("deposited");
    let buy = proto::BuyDivmidsRequest {
        quantity: "10".into(),
        max_price: "1".into(),
        idempotency_key: "b".into(),
    };
    for _ in 0..3 {
        henry.wallet.buy_divmids(buy.clone()).await.expect("bought");
    }
    let charge = proto::ChargeRequest {
        account_id: henry_id.clone(),
        amount: "0.5".into(),
        idempotency_key: "c".into(),
        memo: String::new(),
    };
    let mut charges = Vec::new();
    for _ in 0..3 {
        let charged = service
            .metering
            .charge(charge.clone())
            .await
            .expect("charged")
            .into_inner();
        charges.push(charged);
    }
    assert!(charges[0].seq > 0, "{charges:?}");
    assert!(
        charges.iter().all(|charged| *charged == charges[0]),
        "a retried charge answers as the first did: {charges:?}"
    );
    let mut order = limit(proto::Side::Sell, "2.0000", "1");
    order.client_order_id = "retry-me".into();
    let first = henry
        .trading
        .place_order(order.clone())
        .await
        .expect("placed")
        .into_inner();
    for _ in 0..2 {
        let again = henry
            .trading
            .place_order(order.clone())
            .await
            .expect("a retry")
            .into_inner();
        assert_eq!(
            again.order, first.order,
            "the retry returns the original order"
        );
    }
    // The open order, looked up by either id.
    let placed = first.order.clone().expect("an order");
    for (order_id, client_order_id) in [(placed.order_id.as_str(), ""), ("", "retry-me")] {
        let found = henry
            .trading
            .get_order(proto::GetOrderRequest {
                order_id: order_id.to_string(),
                client_order_id: client_order_id.into(),
            })
            .await
            .expect("found")
            .into_inner();
        assert_eq!(found.order.as_ref(), Some(&placed));
    }
    let mut changed = order.clone();
    changed.quantity = "2".into();
    let status = henry
        .trading
        .place_order(changed)
        .await
        .expect_err("reused id");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(
        balances(&mut henry).await,
        owned(("90.000000", "0.000000", "8.500000", "1.000000"))
    );
    server.stop().await;
}

/// A client that sends without reading its answers is held back, not buffered without
/// end: the exchange takes a bounded part of what it sends until the answers are read,
/// then answers every command, in order.
#[tokio::test]
async fn a_session_whose_client_reads_nothing_is_held_back_then_answered_in_full() {
    const PAIRS: u64 = 40_000;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["erin", "pia"], "500", "100").await;
    let mut pia = traders.pop().expect("pia");
    // Erin's session on a connection of its own with HTTP/2's smallest windows, so that
    // what she does not read holds little on her side.
    let small_windows =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.address))
            .expect("an address")
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .expect("connects");
    let mut erin = traders.pop().expect("erin").on(&small_windows);
    use proto::order_session_request::Command;
    let requests = (0..PAIRS).flat_map(|pair| {
        let client_order_id = format!("o{pair}");
        let mut place = limit(proto::Side::Buy, "0.4000", "0.01");
        place.client_order_id = client_order_id.clone();
        let cancel = proto::CancelOrderRequest {
            client_order_id,
            ..Default::default()
        };
        [
            proto::OrderSessionRequest {
                request_id: 2 * pair,
                command: Some(Command::Place(place)),
            },
            proto::OrderSessionRequest {
                request_id: 2 * pair + 1,
                command: Some(Command::Cancel(cancel)),
            },
        ]
    });
    let mut responses = order_session(&mut erin, requests).await;

    // Order ids are given in order, so each of Pia's orders counts the session's
    // placements before it. Wait until the session has been taken, and then until two of
    // her orders in a row have nothing of it between them.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latest = probe(&mut pia).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let next = probe(&mut pia).await;
        if next == latest + 1 && next > 1_000 {
            latest = next;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exchange kept taking the session"
        );
        latest = next;
    }
    // It stays held back, having taken a bounded part of what was sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = probe(&mut pia).await;
    assert_eq!(
        held,
        latest + 1,
        "the exchange took more of an unread session"
    );
    assert!(
        held < PAIRS / 2,
        "the exchange took {held} of the session's {PAIRS} placements before any answer was read"
    );

    // Once read, every command is answered, in order.
    use proto::order_session_response::Result as SessionResult;
    let mut answered = 0;
    while answered < 2 * PAIRS {
        let response = responses
            .message()
            .await
            .expect("a response")
            .expect("the session goes on");
        assert_eq!(
            response.request_id, answered,
            "answers come in command order"
        );
        let as_asked = match response.result {
            Some(SessionResult::Placed(_)) => answered % 2 == 0,
            Some(SessionResult::Canceled(_)) => answered % 2 == 1,
            _ => false,
        };
        assert!(as_asked, "command {answered} got {:?}", response.result);
        answered += 1;
    }
    server.stop().await;
}

/// Places an order of the prober's own and returns its id.
async fn probe(prober: &mut Clients) -> u64 {
    let placed = prober
        .trading
        .place_order(limit(proto::Side::Buy, "0.4000", "0.01"))
        .await
        .expect("placed")
        .into_inner();
    let order = placed.order.expect("an order");
    order.order_id.parse().expect("an order id is a number")
}
