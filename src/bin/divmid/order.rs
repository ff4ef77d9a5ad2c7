//! `divmid order`: placing, amending and canceling orders, listing them and their fills,
//! and following their updates.

use divmid::api::proto;
use divmid::api::proto::trading_client::TradingClient;
use tonic::transport::Channel;

use crate::cli::*;
use crate::{next, show, Caller};

/// A side's wire name, or `?` for a value this client does not know.
pub fn side_name(side: i32) -> &'static str {
    proto::Side::try_from(side)
        .map(|side| side.as_str_name())
        .unwrap_or("?")
}

fn print_order(order: &proto::Order) {
    let status = proto::OrderStatus::try_from(order.status)
        .map(|status| status.as_str_name())
        .unwrap_or("?");
    let side = side_name(order.side);
    println!(
        "order {} {} {} {} @ {} filled {} remaining {} {}{}",
        order.order_id,
        order.market,
        side,
        order.quantity,
        if order.price.is_empty() {
            "market"
        } else {
            &order.price
        },
        order.filled_quantity,
        order.remaining_quantity,
        status,
        if order.client_order_id.is_empty() {
            String::new()
        } else {
            format!(" (client id {})", order.client_order_id)
        }
    );
}

fn print_fill(fill: &proto::Fill) {
    println!(
        "fill {} of order {}: {} @ {} ({}) seq {}",
        fill.trade_id,
        fill.order_id,
        fill.quantity,
        fill.price,
        proto::Liquidity::try_from(fill.liquidity)
            .map(|liquidity| liquidity.as_str_name())
            .unwrap_or("?"),
        fill.seq
    );
}

fn print_next_page(page_token: &str) {
    if !page_token.is_empty() {
        println!("next page: --page-token {page_token}");
    }
}

pub async fn order(
    mut client: TradingClient<Channel>,
    caller: &Caller,
    command: OrderCommand,
) -> Result<(), String> {
    match command {
        OrderCommand::Place { .. } => place(client, caller, command).await?,
        OrderCommand::Cancel {
            order_id,
            client_order_id,
        } => {
            let request = proto::CancelOrderRequest {
                order_id,
                client_order_id,
            };
            let response = call!(client, cancel_order, caller, request);
            show(caller, &response, |response| {
                response.order.iter().for_each(print_order)
            });
        }
        OrderCommand::CancelAll { market } => {
            let request = proto::CancelAllOrdersRequest { market };
            let response = call!(client, cancel_all_orders, caller, request);
            show(caller, &response, |response| {
                let count = response.canceled_count;
                println!(
                    "canceled {count} order{}",
                    if count == 1 { "" } else { "s" }
                );
            });
        }
        OrderCommand::Amend {
            order_id,
            quantity,
            price,
        } => {
            let request = proto::AmendOrderRequest {
                order_id,
                quantity,
                price,
            };
            let response = call!(client, amend_order, caller, request);
            show(caller, &response, |response| {
                response.order.iter().for_each(print_order);
                response.fills.iter().for_each(print_fill);
            });
        }
        OrderCommand::Get { .. }
        | OrderCommand::List { .. }
        | OrderCommand::Fills { .. }
        | OrderCommand::Updates { .. } => read(client, caller, command).await?,
    }
    Ok(())
}

/// Follows the caller's order updates, `limit` of them or until interrupted.
async fn updates(
    mut client: TradingClient<Channel>,
    caller: &Caller,
    request: proto::StreamOrderUpdatesRequest,
    limit: Option<u64>,
) -> Result<(), String> {
    let mut updates = call!(client, stream_order_updates, caller, request);
    for _ in 0..limit.unwrap_or(u64::MAX) {
        let update = next(&mut updates).await?;
        show(caller, &update, |update| {
            print!("seq {}: ", update.seq);
            match &update.update {
                Some(proto::order_update::Update::Order(order)) => print_order(order),
                Some(proto::order_update::Update::Fill(fill)) => print_fill(fill),
                None => println!("(empty update)"),
            }
        });
    }
    Ok(())
}

/// The commands that read: one order, the orders, the fills, the updates.
async fn read(
    mut client: TradingClient<Channel>,
    caller: &Caller,
    command: OrderCommand,
) -> Result<(), String> {
    match command {
        OrderCommand::Get {
            order_id,
            client_order_id,
        } => {
            let request = proto::GetOrderRequest {
                order_id,
                client_order_id,
            };
            let response = call!(client, get_order, caller, request);
            show(caller, &response, |response| {
                response.order.iter().for_each(print_order)
            });
        }
        OrderCommand::List {
            open_only,
            page_size,
            page_token,
        } => {
            let request = proto::ListOrdersRequest {
                open_only,
                page_size,
                page_token,
            };
            let response = call!(client, list_orders, caller, request);
            show(caller, &response, |response| {
                response.orders.iter().for_each(print_order);
                print_next_page(&response.next_page_token);
            });
        }
        OrderCommand::Fills {
            page_size,
            page_token,
        } => {
            let request = proto::ListFillsRequest {
                page_size,
                page_token,
            };
            let response = call!(client, list_fills, caller, request);
            show(caller, &response, |response| {
                response.fills.iter().for_each(print_fill);
                print_next_page(&response.next_page_token);
            });
        }
        OrderCommand::Updates { from_seq, limit } => {
            let request = proto::StreamOrderUpdatesRequest { from_seq };
            updates(client, caller, request, limit).await?;
        }
        _ => unreachable!("only reads are passed here"),
    }
    Ok(())
}

/// Places an order and prints it with the fills it made.
async fn place(
    mut client: TradingClient<Channel>,
    caller: &Caller,
    command: OrderCommand,
) -> Result<(), String> {
    let OrderCommand::Place {
        market,
        side,
        order_type,
        price,
        quantity,
        time_in_force,
        post_only,
        client_order_id,
        self_trade_prevention,
    } = command
    else {
        unreachable!("only a placement is passed here");
    };
    let request = proto::PlaceOrderRequest {
        market,
        side: side.wire(),
        r#type: order_type.wire(),
        price,
        quantity,
        time_in_force: TimeInForceArgument::wire(time_in_force),
        post_only,
        client_order_id,
        self_trade_prevention: StpArgument::wire(self_trade_prevention),
    };
    let response = call!(client, place_order, caller, request);
    show(caller, &response, |response| {
        response.order.iter().for_each(print_order);
        response.fills.iter().for_each(print_fill);
    });
    Ok(())
}
