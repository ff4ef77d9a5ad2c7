//! Lists page within the message limit: a page asked for 1,000 items that would not fit
//! one message comes shorter, with a token that goes on, and the pages join to every item
//! once. (The ledger's pages are checked in `prepaid.rs`, on a holder's clicks.)

mod common;

use common::{funded_traders, limit, place_all, Clients, Server};
use divmid::api::proto;

/// Every order id `ListOrders` gives, page after page, and how many pages it took.
async fn all_orders(trader: &mut Clients, open_only: bool) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = trader
            .trading
            .list_orders(proto::ListOrdersRequest {
                open_only,
                page_size: 1_000,
                page_token,
            })
            .await
            .expect("a page within the message limit")
            .into_inner();
        pages += 1;
        ids.extend(page.orders.into_iter().map(|order| order.order_id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_thousand_orders_come_in_pages_that_fit_the_message_limit() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "100000", &["bea"], "1000", "100").await;
    let trader = &mut traders[0];
    let bids = (0..1_000).map(|index| {
        let price = format!("0.{:04}", 1_000 + index);
        limit(proto::Side::Buy, &price, "0.01")
    });
    place_all(trader, bids.collect()).await;
    for open_only in [true, false] {
        let (ids, pages) = all_orders(trader, open_only).await;
        assert!(
            pages > 1,
            "1,000 orders of about 90 bytes do not fit 64 KiB"
        );
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            (ids.len(), unique.len()),
            (1_000, 1_000),
            "every order once"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn fills_far_back_in_a_long_history_come_after_pages_that_stop_scanning() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "100000", &["bea", "cal"], "1000", "100").await;
    // Three trades first: bea's only fills.
    let asks = (0..3)
        .map(|_| limit(proto::Side::Sell, "0.5000", "1"))
        .collect();
    place_all(&mut traders[1], asks).await;
    let bids = (0..3)
        .map(|_| limit(proto::Side::Buy, "0.5000", "1"))
        .collect();
    place_all(&mut traders[0], bids).await;
    // Then more events than one page looks at, none a fill of bea's: immediate-or-cancel
    // bids below every ask, each accepted and canceled (two events).
    let orders = divmid::api::services::HISTORY_EVENTS_SCANNED_MAX / 2 + 1_000;
    let misses = (0..orders)
        .map(|_| proto::PlaceOrderRequest {
            time_in_force: proto::TimeInForce::Ioc as i32,
            ..limit(proto::Side::Buy, "0.1000", "1")
        })
        .collect();
    place_all(&mut traders[0], misses).await;
    let bea = &mut traders[0];
    let mut fills = Vec::new();
    let mut page_token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = bea
            .trading
            .list_fills(proto::ListFillsRequest {
                page_size: 1,
                page_token,
            })
            .await
            .expect("a page")
            .into_inner();
        pages.push(page.fills.len());
        fills.extend(page.fills);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        pages[0], 0,
        "the first page stops scanning before the fills: {pages:?}"
    );
    assert_eq!(fills.len(), 3, "every fill once, newest first: {pages:?}");
    let seqs: Vec<u64> = fills.iter().map(|fill| fill.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] > pair[1]), "{seqs:?}");
    server.stop().await;
}
