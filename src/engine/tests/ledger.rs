//! Ledger scenarios, run once: they do not touch a book.

use super::*;

#[test]
fn buying_divmids_charges_the_tier_price_rounded_up() {
    let mut h = Harness::<LevelBook>::new();
    let buyer = h.trader(10 * USD, 0);
    // 0.6666666 USD per DVM, more places than USD holds.
    h.run(Command::SetIssuePrice {
        tier: Tier::Public,
        price: IssuePrice(666_666_600_000),
    });
    let reply = h.run(Command::BuyDivmids {
        account: buyer,
        quantity: Amount(3),
        max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
        idempotency_key: "buy-1".into(),
    });
    // 0.000003 DVM cost 0.0000019999998 USD, charged as 0.000002.
    assert!(matches!(
        reply,
        Reply::DivmidsBought {
            cost: Amount(2),
            ..
        }
    ));
    assert_eq!(h.holdings(buyer), (10 * USD - 2, 0, 3, 0));
    let treasury = h.sequencer.ledger().balances(crate::ledger::TREASURY);
    assert_eq!(treasury[Asset::Usd.index()].available, Amount(2));
    // A price above the buyer's maximum refuses the sale.
    let reject = h.rejected(Command::BuyDivmids {
        account: buyer,
        quantity: Amount(DVM),
        max_price: IssuePrice(600_000_000_000),
        idempotency_key: "buy-2".into(),
    });
    assert_eq!(
        reject.to_string(),
        "max_price: the issue price is above max_price"
    );
}

#[test]
fn subscribers_buy_at_their_own_tier_price() {
    let mut h = Harness::<LevelBook>::new();
    let subscriber = match h.run(Command::CreateAccount {
        name: "sub".into(),
        role: Role::Trader,
        tier: Tier::Subscriber,
        token_hash: [1; 32],
    }) {
        Reply::AccountCreated { account } => account,
        other => panic!("unexpected reply {other:?}"),
    };
    h.run(Command::Deposit {
        account: subscriber,
        source: FundingSourceKind::Paypal,
        amount: Amount(10 * USD),
        source_reference: "someone@example.com".into(),
        idempotency_key: "dep".into(),
    });
    let buy = Command::BuyDivmids {
        account: subscriber,
        quantity: Amount(10 * DVM),
        max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
        idempotency_key: "buy".into(),
    };
    let reject = h.rejected(buy.clone());
    assert_eq!(
        reject.to_string(),
        "tier: the issuer has not set a price for this tier"
    );
    h.run(Command::SetIssuePrice {
        tier: Tier::Subscriber,
        price: IssuePrice(IssuePrice::UNITS_PER_USD / 2),
    });
    h.run(buy);
    assert_eq!(h.holdings(subscriber), (5 * USD, 0, 10 * DVM, 0));
}

#[test]
fn keyed_commands_apply_once_and_refuse_a_reused_key() {
    let mut h = Harness::<LevelBook>::new();
    let trader = h.trader(0, 0);
    let deposit = Command::Deposit {
        account: trader,
        source: FundingSourceKind::Egold,
        amount: Amount(7 * USD),
        source_reference: "123456".into(),
        idempotency_key: "d-1".into(),
    };
    let first = h.run(deposit.clone());
    let seq = h.sequencer.last_seq();
    assert_eq!(h.run(deposit), first);
    assert_eq!(h.sequencer.last_seq(), seq, "a retry emits nothing");
    assert_eq!(h.holdings(trader), (7 * USD, 0, 0, 0));
    let reject = h.rejected(Command::Deposit {
        account: trader,
        source: FundingSourceKind::Egold,
        amount: Amount(8 * USD),
        source_reference: "123456".into(),
        idempotency_key: "d-1".into(),
    });
    assert_eq!(
        reject,
        Reject::AlreadyExists {
            field: "idempotency_key"
        }
    );
    let mint = Command::Mint {
        amount: Amount(5 * DVM),
        memo: "more".into(),
        idempotency_key: "m-2".into(),
    };
    let first = h.run(mint.clone());
    assert_eq!(h.run(mint), first);
    assert_eq!(h.sequencer.supply().minted, Amount(1_000_005 * DVM));
}

#[test]
fn services_charge_divmids_into_revenue_and_supply_balances() {
    let mut h = Harness::<LevelBook>::new();
    let trader = h.trader(0, 2 * DVM);
    let service = h.account(Role::Service);
    let charge = |amount: u64, key: &str| Command::Charge {
        service,
        account: trader,
        amount: Amount(amount),
        memo: "api call".into(),
        idempotency_key: key.into(),
    };
    h.run(charge(1, "c-1"));
    h.run(charge(1, "c-1"));
    h.run(charge(250, "c-2"));
    assert_eq!(h.holdings(trader), (0, 0, 2 * DVM - 251, 0));
    let reject = h.rejected(charge(2 * DVM, "c-3"));
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            asset: Asset::Dvm,
            ..
        }
    ));
    let supply = h.sequencer.supply();
    assert_eq!(supply.spent, Amount(251));
    assert_eq!(supply.circulating, Amount(2 * DVM - 251));
    assert_eq!(
        supply.treasury.0 + supply.circulating.0 + supply.spent.0,
        supply.minted.0
    );
    // Only a service charges, and only a trader is charged.
    let reject = h.rejected(Command::Charge {
        service: trader,
        account: trader,
        amount: Amount(1),
        memo: Box::default(),
        idempotency_key: "c-4".into(),
    });
    assert!(matches!(
        reject,
        Reject::PermissionDenied {
            field: "service",
            ..
        }
    ));
}

#[test]
fn withdrawals_take_only_available_dollars() {
    let mut h = Harness::<LevelBook>::new();
    let trader = h.trader(10 * USD, 0);
    h.limit(trader, Side::Buy, 5_000, 1_000);
    let reject = h.rejected(Command::Withdraw {
        account: trader,
        amount: Amount(6 * USD),
        destination: "bank".into(),
        idempotency_key: "w-1".into(),
    });
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            needed: 6_000_000,
            available: 5_000_000,
            ..
        }
    ));
    let reply = h.run(Command::Withdraw {
        account: trader,
        amount: Amount(5 * USD),
        destination: "bank".into(),
        idempotency_key: "w-1".into(),
    });
    assert_eq!(h.holdings(trader), (0, 5 * USD, 0, 0));
    assert!(matches!(reply, Reply::Funds(_)));
    assert_eq!(h.sequencer.ledger().entered()[Asset::Usd.index()], 5 * USD);
}

#[test]
fn every_event_gets_the_next_sequence_number() {
    let mut h = Harness::<LevelBook>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 100);
    let before = h.sequencer.last_seq();
    h.limit(buyer, Side::Buy, 5_000, 100);
    let seqs: Vec<u64> = h.events.iter().map(|event| event.seq).collect();
    let expected: Vec<u64> = (before + 1..=before + seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    assert!(seqs.len() >= 3, "accepted, fill and two order-done events");
}

#[test]
fn account_creation_validates_its_fields() {
    let mut h = Harness::<LevelBook>::new();
    let reject = h.rejected(Command::CreateAccount {
        name: Box::default(),
        role: Role::Trader,
        tier: Tier::Public,
        token_hash: [0; 32],
    });
    assert_eq!(reject.to_string(), "name: is required");
    let reject = h.rejected(Command::CreateAccount {
        name: "boss".into(),
        role: Role::Issuer,
        tier: Tier::Public,
        token_hash: [0; 32],
    });
    assert_eq!(
        reject.to_string(),
        "role: must be ROLE_TRADER or ROLE_SERVICE"
    );
}
