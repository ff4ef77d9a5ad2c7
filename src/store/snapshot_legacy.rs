//! Snapshot bodies of the formats before kept client order ids were recorded compactly:
//! `DVMSNAP6`, and `DVMSNAP5`, the same without the engine configuration. Each kept id's
//! record held its order as placed and as it ended in full, owner and id included each
//! time. They are read and converted to the current [`SequencerSnapshot`], never written.

use serde::{Deserialize, Serialize};

use crate::command::NewOrder;
use crate::engine::{ClientOrderRecord, EndedRecord, SequencerSnapshot};
use crate::event::OrderView;
use crate::types::{AccountId, OrderId};

/// A kept client order id as the earlier formats recorded it.
#[derive(Serialize, Deserialize)]
pub(super) struct LegacyClientOrderRecord {
    account: AccountId,
    client_order_id: Box<str>,
    placed: NewOrder,
    order_id: OrderId,
    ended: Option<OrderView>,
    expires_ms: Option<u64>,
}

impl From<LegacyClientOrderRecord> for ClientOrderRecord {
    fn from(legacy: LegacyClientOrderRecord) -> ClientOrderRecord {
        let placed = legacy.placed.terms;
        ClientOrderRecord {
            account: legacy.account,
            client_order_id: legacy.client_order_id,
            placed,
            order_id: legacy.order_id,
            ended: legacy.ended.map(|view| EndedRecord {
                terms: (view.terms != placed).then_some(view.terms),
                filled: view.filled,
                status: view.status,
                created_seq: view.created_seq,
            }),
            expires_ms: legacy.expires_ms,
        }
    }
}

/// The snapshot a `DVMSNAP6` body holds (or a `DVMSNAP5` body with postcard's `None`
/// appended for the configuration it lacks), converted.
pub(super) fn decode(body: &[u8]) -> Result<SequencerSnapshot, postcard::Error> {
    let legacy: SequencerSnapshot<LegacyClientOrderRecord> = postcard::from_bytes(body)?;
    Ok(SequencerSnapshot {
        last_seq: legacy.last_seq,
        next_order_id: legacy.next_order_id,
        next_trade_id: legacy.next_trade_id,
        clock_ms: legacy.clock_ms,
        ledger: legacy.ledger,
        prepaid: legacy.prepaid,
        idempotency: legacy.idempotency,
        books: legacy.books,
        client_orders: legacy.client_orders.into_iter().map(Into::into).collect(),
        engine: legacy.engine,
    })
}

/// The body a snapshot of `DVMSNAP6`'s format would hold for `snapshot`, or `DVMSNAP5`'s
/// when it records no configuration: what a store written by an earlier version has.
#[cfg(test)]
pub(super) fn encode(snapshot: &SequencerSnapshot) -> Vec<u8> {
    let records = snapshot.client_orders.iter().map(|record| {
        let id = || Some(record.client_order_id.as_ref().into());
        LegacyClientOrderRecord {
            account: record.account,
            client_order_id: record.client_order_id.clone(),
            placed: NewOrder {
                account: record.account,
                terms: record.placed,
                client_order_id: Some(record.client_order_id.clone()),
            },
            order_id: record.order_id,
            ended: record.ended.as_ref().map(|ended| OrderView {
                order_id: record.order_id,
                account: record.account,
                client_order_id: id(),
                terms: ended.terms.unwrap_or(record.placed),
                filled: ended.filled,
                status: ended.status,
                created_seq: ended.created_seq,
            }),
            expires_ms: record.expires_ms,
        }
    });
    let legacy = SequencerSnapshot {
        last_seq: snapshot.last_seq,
        next_order_id: snapshot.next_order_id,
        next_trade_id: snapshot.next_trade_id,
        clock_ms: snapshot.clock_ms,
        ledger: snapshot.ledger.clone(),
        prepaid: snapshot.prepaid.clone(),
        idempotency: snapshot.idempotency.clone(),
        books: snapshot.books.clone(),
        client_orders: records.collect(),
        engine: snapshot.engine.clone(),
    };
    let mut body = postcard::to_allocvec(&legacy).expect("a snapshot encodes");
    if legacy.engine.is_none() {
        // DVMSNAP5 ends before the configuration.
        body.pop();
    }
    body
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::command::{Command, OrderRef};
    use crate::config::EngineConfig;
    use crate::engine::{LevelBook, Sequencer};
    use crate::store::recovery::recover;
    use crate::store::snapshot_file::{EARLIER_MAGIC, LEGACY_MAGIC};
    use crate::store::Store;
    use crate::types::{
        Amount, FundingSourceKind, IssuePrice, MarketId, OrderTerms, OrderType, Price, Quantity,
        Role, SelfTradePrevention, Side, Tier, TimeInForce,
    };

    const TRADER: AccountId = AccountId(3);

    /// A trader's orders placed with client order ids: `canceled` of them placed and
    /// canceled, one amended then canceled, and one resting.
    fn trading(canceled: usize) -> Sequencer<LevelBook> {
        let mut sequencer = Sequencer::<LevelBook>::new(EngineConfig::default());
        let mut run = |command: Command| {
            let mut events = Vec::new();
            let reply = sequencer.apply(1_000, &command, &mut events);
            reply
                .expect("applies")
                .order(&events)
                .map(|view| view.order_id)
        };
        run(Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        });
        run(Command::CreateAccount {
            name: "trader".into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [7; 32],
        });
        run(Command::Deposit {
            account: TRADER,
            source: FundingSourceKind::Card,
            amount: Amount(50_000_000),
            source_reference: "4111111111111111".into(),
            idempotency_key: "deposit".into(),
        });
        let place = |id: String| {
            Command::PlaceOrder(NewOrder {
                account: TRADER,
                terms: OrderTerms {
                    market: MarketId(0),
                    side: Side::Buy,
                    order_type: OrderType::Limit,
                    price: Some(Price(5_000)),
                    quantity: Quantity(100),
                    time_in_force: TimeInForce::GoodTillCanceled,
                    post_only: false,
                    self_trade_prevention: SelfTradePrevention::CancelTaker,
                },
                client_order_id: Some(id.into()),
            })
        };
        let cancel = |id: &str| Command::CancelOrder {
            account: TRADER,
            target: OrderRef::Client(id.into()),
        };
        for order in 0..canceled {
            let id = format!("order-{order:06}");
            run(place(id.clone()));
            run(cancel(&id));
        }
        let amended = run(place("amended".to_string())).expect("placed");
        run(Command::AmendOrder {
            account: TRADER,
            order_id: amended,
            quantity: Some(Quantity(50)),
            price: Some(Price(4_000)),
        });
        run(cancel("amended"));
        run(place("resting".to_string()));
        sequencer
    }

    #[test]
    fn a_store_whose_snapshot_is_of_an_earlier_format_recovers_the_same_state() {
        let sequencer = trading(3);
        let snapshot = sequencer.snapshot();
        let amended = snapshot
            .client_orders
            .iter()
            .find(|record| &*record.client_order_id == "amended")
            .and_then(|record| record.ended.as_ref())
            .expect("the amended order's id is kept");
        assert_eq!(
            amended.terms.map(|terms| terms.quantity),
            Some(Quantity(50))
        );
        for magic in [EARLIER_MAGIC, LEGACY_MAGIC] {
            let directory = tempfile::tempdir().expect("a temporary directory");
            let store = Store::open(directory.path()).expect("opens");
            let mut earlier = snapshot.clone();
            if magic == LEGACY_MAGIC {
                earlier.engine = None;
            }
            let body = encode(&earlier);
            let hash: [u8; 32] = Sha256::digest(&body).into();
            let snapshots = store.snapshot_directory();
            std::fs::create_dir_all(&snapshots).expect("a snapshot directory");
            let name = format!("{:020}.snapshot", snapshot.last_seq);
            std::fs::write(snapshots.join(name), [&magic[..], &hash, &body].concat())
                .expect("written");

            let recovered = recover::<LevelBook>(&store, EngineConfig::default())
                .expect("a snapshot of an earlier format restores");
            assert_eq!(recovered.snapshot_seq, snapshot.last_seq);
            assert_eq!(recovered.sequencer.snapshot(), snapshot);
            assert_eq!(recovered.sequencer.state_hash(), sequencer.state_hash());
        }
    }

    #[test]
    fn kept_client_order_ids_take_under_half_the_bytes_they_took() {
        let snapshot = trading(500).snapshot();
        let compact = snapshot.encoded().body.len();
        let earlier = encode(&snapshot).len();
        assert!(
            compact * 2 < earlier,
            "{compact} bytes against {earlier} in the earlier format"
        );
    }
}
