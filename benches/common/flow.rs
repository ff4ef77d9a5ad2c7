//! Deterministic order flows shared by the engine benchmark and the differential test
//! against lobster: the same seed always gives the same operations, so both engines see
//! exactly the same flow.
//!
//! Buys come from one pool of accounts and sells from another, so no order can meet one
//! of its own account and self-trade prevention never changes the outcome: the fills must
//! equal those of a book that has no such rule.

#![allow(dead_code)]

use divmid::command::{Command, NewOrder, OrderRef};
use divmid::config::EngineConfig;
use divmid::engine::{OrderBook, Sequencer};
use divmid::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderId, OrderTerms, OrderType,
    Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

/// The mid price of generated flows, in ticks (1.0000 USD per DVM).
pub const MID: u64 = 10_000;

/// Accounts per side.
pub const ACCOUNTS_PER_SIDE: u64 = 64;

/// One operation of a flow. Order ids are assigned by the flow in placement order,
/// starting at 1, which is also the order the sequencer numbers accepted orders in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A limit order with its time in force.
    Limit {
        id: u64,
        side: Side,
        price: u64,
        lots: u64,
        time_in_force: TimeInForce,
    },
    /// A market order without a price cap.
    Market { id: u64, side: Side, lots: u64 },
    /// Cancel an order placed earlier (which may have filled since).
    Cancel { id: u64 },
    /// Change an earlier order's quantity and/or price.
    Amend {
        id: u64,
        lots: Option<u64>,
        price: Option<u64>,
    },
}

/// A small xorshift generator: deterministic, seedable, and all a flow needs.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

fn side_of(random: &mut Random) -> Side {
    if random.below(2) == 0 {
        Side::Buy
    } else {
        Side::Sell
    }
}

/// A price for a new limit order: mostly on its own side of the mid, sometimes across it.
fn limit_price(random: &mut Random, side: Side, band: u64, crossing: u64) -> u64 {
    let offset = random.below(band + crossing);
    // Offsets below `crossing` land on the other side of the mid.
    match side {
        Side::Buy => MID + crossing - offset,
        Side::Sell => MID - crossing + offset,
    }
}

/// The issue's flow: 70% limit, 10% market, 20% cancel, prices in a band around the mid so
/// that about a third of the limits cross.
pub fn mixed_flow(seed: u64, operations: usize) -> Vec<Operation> {
    let mut random = Random::new(seed);
    let mut flow = Vec::with_capacity(operations);
    let mut placed: Vec<u64> = Vec::new();
    let mut next_id = 1;
    while flow.len() < operations {
        let roll = random.below(100);
        if roll < 70 {
            let side = side_of(&mut random);
            let price = limit_price(&mut random, side, 30, 20);
            let lots = 1 + random.below(100);
            flow.push(Operation::Limit {
                id: next_id,
                side,
                price,
                lots,
                time_in_force: TimeInForce::GoodTillCanceled,
            });
            placed.push(next_id);
            next_id += 1;
        } else if roll < 80 {
            let side = side_of(&mut random);
            let lots = 1 + random.below(100);
            flow.push(Operation::Market {
                id: next_id,
                side,
                lots,
            });
            next_id += 1;
        } else if !placed.is_empty() {
            let index = random.below(placed.len() as u64) as usize;
            let id = placed.swap_remove(index);
            flow.push(Operation::Cancel { id });
        }
    }
    flow
}

/// An exchange-core-like flow over a book pre-filled with `resting` orders: new GTC and
/// IOC orders, cancels and amendments (half of them move the price, half reduce the
/// quantity).
pub fn exchange_core_flow(seed: u64, resting: usize, operations: usize) -> (Vec<Operation>, usize) {
    let mut random = Random::new(seed);
    let mut flow = Vec::with_capacity(resting + operations);
    let mut placed: Vec<u64> = Vec::with_capacity(resting);
    let mut next_id = 1;
    // The resting book: no price crosses, spread over a wide band.
    let band = (resting as u64 / 50).clamp(20, 4_000);
    for _ in 0..resting {
        let side = side_of(&mut random);
        let price = limit_price(&mut random, side, band, 0);
        let price = match side {
            Side::Buy => price - 1,
            Side::Sell => price + 1,
        };
        flow.push(Operation::Limit {
            id: next_id,
            side,
            price,
            lots: 1 + random.below(100),
            time_in_force: TimeInForce::GoodTillCanceled,
        });
        placed.push(next_id);
        next_id += 1;
    }
    let prefill = flow.len();
    while flow.len() < prefill + operations {
        let roll = random.below(100);
        if roll < 30 {
            let side = side_of(&mut random);
            let price = limit_price(&mut random, side, band.min(200), 2);
            flow.push(Operation::Limit {
                id: next_id,
                side,
                price,
                lots: 1 + random.below(100),
                time_in_force: TimeInForce::GoodTillCanceled,
            });
            placed.push(next_id);
            next_id += 1;
        } else if roll < 40 {
            let side = side_of(&mut random);
            let price = limit_price(&mut random, side, 4, 4);
            flow.push(Operation::Limit {
                id: next_id,
                side,
                price,
                lots: 1 + random.below(100),
                time_in_force: TimeInForce::ImmediateOrCancel,
            });
            next_id += 1;
        } else if placed.is_empty() {
            continue;
        } else if roll < 70 {
            let index = random.below(placed.len() as u64) as usize;
            let id = placed.swap_remove(index);
            flow.push(Operation::Cancel { id });
        } else {
            let index = random.below(placed.len() as u64) as usize;
            let id = placed[index];
            let amendment = if random.below(2) == 0 {
                Operation::Amend {
                    id,
                    lots: None,
                    price: Some(MID - 100 + random.below(200)),
                }
            } else {
                Operation::Amend {
                    id,
                    lots: Some(1 + random.below(50)),
                    price: None,
                }
            };
            flow.push(amendment);
        }
    }
    (flow, prefill)
}

/// The account that places an order of `side`: buyers and sellers never share one.
pub fn account_for(side: Side, id: u64) -> AccountId {
    let first_trader = 3;
    let pool = match side {
        Side::Buy => 0,
        Side::Sell => ACCOUNTS_PER_SIDE,
    };
    AccountId(first_trader + pool + id % ACCOUNTS_PER_SIDE)
}

/// The owner of order `id`, given the side it was placed on.
pub fn owner(sides: &[Side], id: u64) -> AccountId {
    account_for(sides[id as usize], id)
}

/// The side of every order id in the flow (index 0 unused).
pub fn sides_of(flow: &[Operation]) -> Vec<Side> {
    let mut sides = vec![Side::Buy];
    for operation in flow {
        match *operation {
            Operation::Limit { side, .. } | Operation::Market { side, .. } => sides.push(side),
            _ => {}
        }
    }
    sides
}

/// The commands that open the flow's accounts and fund them with far more than any flow
/// can spend.
pub fn funding_commands() -> Vec<Command> {
    let fortune = 1_000_000_000_000_000 / 1_000;
    let mut commands = vec![
        Command::Mint {
            amount: Amount(fortune * ACCOUNTS_PER_SIDE * 2),
            memo: Box::default(),
            idempotency_key: "flow".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(1),
        },
    ];
    for index in 0..ACCOUNTS_PER_SIDE * 2 {
        let account = AccountId(3 + index);
        commands.push(Command::CreateAccount {
            name: format!("trader {index}").into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [0; 32],
        });
        commands.push(Command::Deposit {
            account,
            source: FundingSourceKind::Card,
            amount: Amount(fortune),
            source_reference: "4111111111111111".into(),
            idempotency_key: "flow".into(),
        });
        commands.push(Command::BuyDivmids {
            account,
            quantity: Amount(fortune),
            max_price: IssuePrice(1),
            idempotency_key: "flow purchase".into(),
        });
    }
    commands
}

/// A sequencer with the flow's accounts funded.
pub fn funded_sequencer<B: OrderBook>() -> Sequencer<B> {
    funded_sequencer_with(EngineConfig::default())
}

/// How many orders the flow places.
pub fn placements(flow: &[Operation]) -> u64 {
    flow.iter()
        .filter(|operation| {
            matches!(
                operation,
                Operation::Limit { .. } | Operation::Market { .. }
            )
        })
        .count() as u64
}

/// The flow as sequencer commands, on a sequencer that has placed no order before.
pub fn commands(flow: &[Operation]) -> Vec<Command> {
    commands_after(flow, 0)
}

/// The flow as sequencer commands, on a sequencer that has already placed `earlier`
/// orders: the flow's order ids are shifted past them.
pub fn commands_after(flow: &[Operation], earlier: u64) -> Vec<Command> {
    let sides = sides_of(flow);
    flow.iter()
        .map(|operation| command(&sides, *operation, earlier))
        .collect()
}

fn command(sides: &[Side], operation: Operation, earlier: u64) -> Command {
    let order = |id: u64, side: Side, order_type, price, lots, time_in_force| {
        Command::PlaceOrder(NewOrder {
            account: account_for(side, id),
            terms: OrderTerms {
                market: MarketId(0),
                side,
                order_type,
                price,
                quantity: Quantity(lots),
                time_in_force,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            client_order_id: None,
        })
    };
    match operation {
        Operation::Limit {
            id,
            side,
            price,
            lots,
            time_in_force,
        } => order(
            id,
            side,
            OrderType::Limit,
            Some(Price(price)),
            lots,
            time_in_force,
        ),
        Operation::Market { id, side, lots } => order(
            id,
            side,
            OrderType::Market,
            None,
            lots,
            TimeInForce::ImmediateOrCancel,
        ),
        Operation::Cancel { id } => Command::CancelOrder {
            account: owner(sides, id),
            target: OrderRef::Id(OrderId(id + earlier)),
        },
        Operation::Amend { id, lots, price } => Command::AmendOrder {
            account: owner(sides, id),
            order_id: OrderId(id + earlier),
            quantity: lots.map(Quantity),
            price: price.map(Price),
        },
    }
}

/// The flow as lobster orders (amendments have no lobster equivalent and are left out).
pub fn lobster_orders(flow: &[Operation]) -> Vec<lobster::OrderType> {
    let side = |side: Side| match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    };
    flow.iter()
        .filter_map(|operation| match *operation {
            Operation::Limit {
                id,
                side: order_side,
                price,
                lots,
                ..
            } => Some(lobster::OrderType::Limit {
                id: u128::from(id),
                side: side(order_side),
                qty: lots,
                price,
            }),
            Operation::Market {
                id,
                side: order_side,
                lots,
            } => Some(lobster::OrderType::Market {
                id: u128::from(id),
                side: side(order_side),
                qty: lots,
            }),
            Operation::Cancel { id } => Some(lobster::OrderType::Cancel { id: u128::from(id) }),
            Operation::Amend { .. } => None,
        })
        .collect()
}

/// A sequencer with the flow's accounts funded, under `config`.
pub fn funded_sequencer_with<B: OrderBook>(config: EngineConfig) -> Sequencer<B> {
    let mut sequencer = Sequencer::<B>::new(config);
    let mut events = Vec::new();
    for command in funding_commands() {
        sequencer
            .apply(0, &command, &mut events)
            .expect("setting up the flow's accounts is accepted");
    }
    sequencer
}

/// The order flow of `divmid-load session`, as commands with their clock times: one
/// account placing limit orders with client order ids, a third of them IOC across a
/// maker's ten levels a side (quoted again every 1,000 commands), the rest resting behind
/// them, each canceled by its client order id once 25 more rest; `per_ms` commands a
/// millisecond. Under a retention of seconds the sequencer keeps hundreds of thousands of
/// the ids, as the exchange does under that load.
pub fn load_flow(commands: usize, per_ms: u64) -> Vec<(u64, Command)> {
    let taker = account_for(Side::Buy, 0);
    let maker = account_for(Side::Sell, 0);
    let order = |account, side, price: u64, lots, time_in_force, client_order_id| {
        Command::PlaceOrder(NewOrder {
            account,
            terms: OrderTerms {
                market: MarketId(0),
                side,
                order_type: OrderType::Limit,
                price: Some(Price(price)),
                quantity: Quantity(lots),
                time_in_force,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            client_order_id,
        })
    };
    let mut flow = Vec::with_capacity(commands + commands / 50 + 20);
    let mut random = Random::new(0x9E37_79B9_7F4A_7C15);
    let mut resting: std::collections::VecDeque<Box<str>> = Default::default();
    for step in 0..commands {
        let now_ms = step as u64 / per_ms;
        if step.is_multiple_of(1_000) {
            for level in 1..=10 {
                let time_in_force = TimeInForce::GoodTillCanceled;
                flow.push((
                    now_ms,
                    order(maker, Side::Buy, MID - level, 1_000, time_in_force, None),
                ));
                flow.push((
                    now_ms,
                    order(maker, Side::Sell, MID + level, 1_000, time_in_force, None),
                ));
            }
        }
        if step % 2 == 1 && resting.len() >= 25 {
            let client_order_id = resting.pop_front().expect("25 rest");
            flow.push((
                now_ms,
                Command::CancelOrder {
                    account: taker,
                    target: OrderRef::Client(client_order_id),
                },
            ));
            continue;
        }
        let roll = random.next_u64();
        let buy = roll & 1 == 0;
        let marketable = (roll >> 1).is_multiple_of(3);
        let depth = 11 + (roll >> 8) % 50;
        let (side, price) = match (buy, marketable) {
            (true, true) => (Side::Buy, MID + 10),
            (false, true) => (Side::Sell, MID - 10),
            (true, false) => (Side::Buy, MID - depth),
            (false, false) => (Side::Sell, MID + depth),
        };
        let client_order_id: Box<str> = format!("w0-{step}").into();
        let time_in_force = if marketable {
            TimeInForce::ImmediateOrCancel
        } else {
            resting.push_back(client_order_id.clone());
            TimeInForce::GoodTillCanceled
        };
        let lots = 1 + (roll >> 20) % 5;
        flow.push((
            now_ms,
            order(
                taker,
                side,
                price,
                lots,
                time_in_force,
                Some(client_order_id),
            ),
        ));
    }
    flow
}
