//! Differential test against the `lobster` order book: the same flows of GTC limit,
//! market and cancel orders, with no order ever meeting one of its own account (so
//! self-trade prevention never applies), must give the same fills, quantities and
//! prices, in the same order.

#[path = "../benches/common/flow.rs"]
mod flow;

use divmid::engine::LevelBook;
use divmid::event::{EventKind, Reply};
use flow::Operation;

/// `(maker, taker, price, lots)` of every fill, per operation.
type Fills = Vec<Vec<(u64, u64, u64, u64)>>;

fn divmid_fills(operations: &[Operation]) -> Fills {
    let mut sequencer = flow::funded_sequencer::<LevelBook>();
    let mut events = Vec::new();
    let mut fills = Vec::new();
    for (operation, command) in operations.iter().zip(flow::commands(operations)) {
        events.clear();
        let reply = sequencer.apply(0, &command, &mut events);
        if let Operation::Limit { id, .. } | Operation::Market { id, .. } = operation {
            match reply {
                Ok(Reply::Placed(order_id)) => assert_eq!(order_id.0, *id),
                other => panic!("placing {operation:?} gave {other:?}"),
            }
        }
        fills.push(
            events
                .iter()
                .filter_map(|event| match &event.kind {
                    EventKind::Fill(fill) => Some((
                        fill.maker_order.0,
                        fill.taker_order.0,
                        fill.price.0,
                        fill.quantity.0,
                    )),
                    _ => None,
                })
                .collect(),
        );
    }
    fills
}

fn lobster_fills(operations: &[Operation]) -> Fills {
    let mut book = lobster::OrderBook::default();
    flow::lobster_orders(operations)
        .into_iter()
        .map(|order| match book.execute(order) {
            lobster::OrderEvent::Filled { fills, .. }
            | lobster::OrderEvent::PartiallyFilled { fills, .. } => fills
                .iter()
                .map(|fill| {
                    (
                        fill.order_2 as u64,
                        fill.order_1 as u64,
                        fill.price,
                        fill.qty,
                    )
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn the_same_flows_give_the_same_fills_as_lobster() {
    let mut total_fills = 0;
    for seed in 1..=20 {
        let operations = flow::mixed_flow(seed, 5_000);
        let ours = divmid_fills(&operations);
        let theirs = lobster_fills(&operations);
        assert_eq!(ours.len(), theirs.len());
        for (index, (our_fills, their_fills)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                our_fills, their_fills,
                "seed {seed}, operation {index} ({:?}) filled differently",
                operations[index]
            );
        }
        total_fills += ours.iter().map(Vec::len).sum::<usize>();
    }
    // The flows must actually trade for the comparison to mean anything.
    assert!(total_fills > 10_000, "only {total_fills} fills");
}

#[test]
fn about_a_third_of_the_limit_orders_cross() {
    let operations = flow::mixed_flow(7, 100_000);
    let fills = divmid_fills(&operations);
    let (mut limits, mut crossing) = (0, 0);
    for (operation, fills) in operations.iter().zip(&fills) {
        if let Operation::Limit { id, .. } = operation {
            limits += 1;
            if fills.iter().any(|fill| fill.1 == *id) {
                crossing += 1;
            }
        }
    }
    let percent = crossing * 100 / limits;
    assert!((28..=38).contains(&percent), "{percent}% of limits crossed");
}
