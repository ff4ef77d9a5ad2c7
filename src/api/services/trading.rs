//! `Trading`: orders, their history and their streams.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::unexpected;
use super::Api;
use crate::api::context::parse_id;
use crate::api::history;
use crate::api::proto;
use crate::api::status;
use crate::command::{Command, OrderRef};
use crate::event::{OrderView, Reply};
use crate::pipeline::{Answer, Query};
use crate::types::Role;

#[tonic::async_trait]
impl proto::trading_server::Trading for Api {
    async fn place_order(
        &self,
        request: Request<proto::PlaceOrderRequest>,
    ) -> Result<Response<proto::PlaceOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let order = crate::api::convert::new_order(&self.context, caller, request.into_inner())?;
        let committed = self.context.command(Command::PlaceOrder(order)).await?;
        let Some(view) = committed.reply.order(&committed.events) else {
            return Err(unexpected(&committed.reply));
        };
        let market = self.context.market_at(view.terms.market);
        let size = self.context.config.server.message_bytes_max;
        let (fills, fills_truncated) = market.fills_within(view.order_id, &committed.events, size);
        Ok(Response::new(proto::PlaceOrderResponse {
            order: Some(market.order(&view)),
            fills,
            fills_truncated,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::CancelOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let target =
            crate::api::convert::order_target(&message.order_id, &message.client_order_id)?;
        let committed = self
            .context
            .command(Command::CancelOrder {
                account: caller.account,
                target,
            })
            .await?;
        let Reply::Order(view) = &committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::CancelOrderResponse {
            order: Some(self.order_reply(view)),
        }))
    }

    async fn cancel_all_orders(
        &self,
        request: Request<proto::CancelAllOrdersRequest>,
    ) -> Result<Response<proto::CancelAllOrdersResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let market = if message.market.is_empty() {
            None
        } else {
            Some(self.context.market("market", &message.market)?.id)
        };
        let committed = self
            .context
            .command(Command::CancelAllOrders {
                account: caller.account,
                market,
            })
            .await?;
        let Reply::CanceledCount(count) = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::CancelAllOrdersResponse {
            canceled_count: count,
        }))
    }

    async fn amend_order(
        &self,
        request: Request<proto::AmendOrderRequest>,
    ) -> Result<Response<proto::AmendOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let command =
            crate::api::convert::amend_order(&self.context, caller, request.into_inner()).await?;
        let committed = self.context.command(command).await?;
        let Reply::Order(view) = &committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        let market = self.context.market_at(view.terms.market);
        let size = self.context.config.server.message_bytes_max;
        let (fills, fills_truncated) = market.fills_within(view.order_id, &committed.events, size);
        Ok(Response::new(proto::AmendOrderResponse {
            order: Some(market.order(view)),
            fills,
            fills_truncated,
        }))
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::GetOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let target =
            crate::api::convert::order_target(&message.order_id, &message.client_order_id)?;
        // One order looked up, not every open order of the caller built.
        let query = match &target {
            OrderRef::Id(order_id) => Query::OpenOrder {
                account: caller.account,
                order_id: *order_id,
            },
            OrderRef::Client(client_order_id) => Query::OrderByClientId {
                account: caller.account,
                client_order_id: client_order_id.clone(),
            },
        };
        let Answer::Order(kept) = self.context.query(query).await? else {
            return Err(status::unexpected_answer());
        };
        let found = match (kept, target) {
            (Some(view), _) => Some(view),
            // A client order id is known while the exchange keeps it (the order's life,
            // then the retention window), as a retry under it is.
            (None, OrderRef::Client(_)) => {
                return Err(status::not_found(
                    "client_order_id",
                    "no order of yours has it (an ended order's id is kept for the retention \
                     window)",
                ))
            }
            // Not open: it ended, or it is not the caller's. Ended orders are in history.
            (None, OrderRef::Id(order_id)) => {
                self.context.wait_indexed().await?;
                let history = self.context.history.clone();
                status::from_history_read(
                    tokio::task::spawn_blocking(move || history.order(order_id)).await,
                )?
                .filter(|view| view.account == caller.account)
            }
        };
        match found {
            Some(view) => Ok(Response::new(proto::GetOrderResponse {
                order: Some(self.order_reply(&view)),
            })),
            None => Err(status::not_found("order_id", "no order of yours matches")),
        }
    }

    async fn list_orders(
        &self,
        request: Request<proto::ListOrdersRequest>,
    ) -> Result<Response<proto::ListOrdersResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let page_size = self.context.page_size(message.page_size)?;
        if !message.open_only {
            // Every order, newest first, from history; the page token is the last order id.
            let before = if message.page_token.is_empty() {
                None
            } else {
                Some(parse_id("page_token", &message.page_token)?)
            };
            self.context.wait_indexed().await?;
            let history = self.context.history.clone();
            let account = caller.account;
            let orders = status::from_history_read(
                tokio::task::spawn_blocking(move || {
                    history.account_orders(account, before, page_size)
                })
                .await,
            )?;
            let full = orders.len() == page_size;
            return Ok(Response::new(self.orders_page(&orders, full)));
        }
        let after = if message.page_token.is_empty() {
            0
        } else {
            parse_id("page_token", &message.page_token)?
        };
        let Answer::Orders(open) = self
            .context
            .query(Query::OpenOrders(caller.account))
            .await?
        else {
            return Err(status::unexpected_answer());
        };
        let page: Vec<OrderView> = open
            .into_iter()
            .filter(|order| order.order_id.0 > after)
            .take(page_size)
            .collect();
        let full = page.len() == page_size;
        Ok(Response::new(self.orders_page(&page, full)))
    }

    async fn list_fills(
        &self,
        request: Request<proto::ListFillsRequest>,
    ) -> Result<Response<proto::ListFillsResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let context = Arc::clone(&self.context);
        let (fills, next) = self
            .page_from_history(
                caller.account,
                message.page_size,
                &message.page_token,
                move |event| history::fills(&context, caller.account, std::slice::from_ref(event)),
            )
            .await?;
        Ok(Response::new(proto::ListFillsResponse {
            fills,
            next_page_token: next,
        }))
    }

    type OrderSessionStream = BoxStream<proto::OrderSessionResponse>;

    async fn order_session(
        &self,
        request: Request<Streaming<proto::OrderSessionRequest>>,
    ) -> Result<Response<Self::OrderSessionStream>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        Ok(Response::new(crate::api::session::start::<
            crate::api::session::Orders,
        >(
            Arc::clone(&self.context),
            caller,
            request.into_inner(),
        )))
    }

    type StreamOrderUpdatesStream = BoxStream<proto::OrderUpdate>;

    async fn stream_order_updates(
        &self,
        request: Request<proto::StreamOrderUpdatesRequest>,
    ) -> Result<Response<Self::StreamOrderUpdatesStream>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let from_seq = request.into_inner().from_seq;
        Ok(Response::new(crate::api::updates::start(
            Arc::clone(&self.context),
            caller.account,
            from_seq,
        )?))
    }
}
