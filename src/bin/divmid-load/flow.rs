//! The commands a load worker sends: limit orders in a band around the maker's levels,
//! a third of them marketable (IOC, taking from the maker), the rest resting deeper than
//! the maker's levels and each canceled, by its client order id, some commands later.
//! The same flow goes to the exchange and to the echo server.

use std::collections::VecDeque;

use divmid::api::proto;

/// The mid price, in ticks of 0.0001 (1.0000 USD per DVM).
pub const MID_TICKS: u64 = 10_000;

/// Price levels the maker quotes on each side, one tick apart from the mid outwards.
pub const MAKER_LEVELS: u64 = 10;

/// Resting orders a worker keeps before it cancels its oldest.
const RESTING_PER_WORKER: usize = 25;

/// Ticks of the band in which a worker's resting orders are spread.
const BAND_TICKS: u64 = 50;

/// One command of the flow.
pub enum Step {
    Place(proto::PlaceOrderRequest),
    Cancel(proto::CancelOrderRequest),
}

/// A worker's flow: deterministic for a given worker number.
pub struct Flow {
    worker: u64,
    random: u64,
    placed: u64,
    steps: u64,
    resting: VecDeque<String>,
}

impl Flow {
    pub fn new(worker: u64) -> Flow {
        Flow {
            worker,
            random: 0x9E37_79B9_7F4A_7C15 ^ (worker + 1).wrapping_mul(0x2545_F491_4F6C_DD1D),
            placed: 0,
            steps: 0,
            resting: VecDeque::with_capacity(RESTING_PER_WORKER + 1),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: all a flow needs.
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// The next command: every other one cancels the oldest resting order once the
    /// worker has enough of them.
    pub fn next_step(&mut self) -> Step {
        self.steps += 1;
        if self.steps.is_multiple_of(2) && self.resting.len() >= RESTING_PER_WORKER {
            if let Some(client_order_id) = self.resting.pop_front() {
                return Step::Cancel(proto::CancelOrderRequest {
                    order_id: String::new(),
                    client_order_id,
                });
            }
        }
        Step::Place(self.next_order())
    }

    fn next_order(&mut self) -> proto::PlaceOrderRequest {
        let random = self.next_random();
        self.placed += 1;
        let buy = random & 1 == 0;
        let marketable = (random >> 1).is_multiple_of(3);
        let depth = MAKER_LEVELS + 1 + (random >> 8) % BAND_TICKS;
        let ticks = match (buy, marketable) {
            // Crosses every maker level, fills at the best one.
            (true, true) => MID_TICKS + MAKER_LEVELS,
            (false, true) => MID_TICKS - MAKER_LEVELS,
            // Rests behind the maker's levels, so a marketable order never meets it.
            (true, false) => MID_TICKS - depth,
            (false, false) => MID_TICKS + depth,
        };
        let client_order_id = format!("w{}-{}", self.worker, self.placed);
        if !marketable {
            self.resting.push_back(client_order_id.clone());
        }
        let lots = 1 + (random >> 20) % 5;
        proto::PlaceOrderRequest {
            market: "DVM-USD".to_string(),
            side: if buy {
                proto::Side::Buy
            } else {
                proto::Side::Sell
            } as i32,
            r#type: proto::OrderType::Limit as i32,
            price: price(ticks),
            quantity: format!("0.{lots:02}"),
            time_in_force: if marketable {
                proto::TimeInForce::Ioc
            } else {
                proto::TimeInForce::Gtc
            } as i32,
            post_only: false,
            client_order_id,
            self_trade_prevention: proto::SelfTradePrevention::CancelTaker as i32,
        }
    }
}

/// A price of `ticks` of 0.0001, as the wire writes it.
pub fn price(ticks: u64) -> String {
    format!("{}.{:04}", ticks / 10_000, ticks % 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_orders_take_and_every_resting_order_is_canceled_in_turn() {
        let mut flow = Flow::new(3);
        let (mut marketable, mut resting, mut cancels) = (0, 0, 0);
        let mut placed = std::collections::HashSet::new();
        for _ in 0..30_000 {
            match flow.next_step() {
                Step::Place(order) => {
                    assert!(
                        placed.insert(order.client_order_id.clone()),
                        "ids are unique"
                    );
                    if order.time_in_force == proto::TimeInForce::Ioc as i32 {
                        marketable += 1;
                    } else {
                        resting += 1;
                    }
                }
                Step::Cancel(cancel) => {
                    assert!(
                        placed.contains(&cancel.client_order_id),
                        "cancels a placed order"
                    );
                    cancels += 1;
                }
            }
        }
        let orders = marketable + resting;
        assert!(
            (orders / 4..orders / 2).contains(&marketable),
            "{marketable} of {orders}"
        );
        assert!(
            resting - cancels <= RESTING_PER_WORKER,
            "{resting} placed, {cancels} canceled"
        );
    }
}
