//! The baseline: a raw tonic server with the exchange's own services and message shapes
//! that answers every order and charge at once, from the request alone, with no ledger,
//! book or disk behind it. The load measured against it is what the transport carries on
//! this machine; the exchange's figures are read against it.
//!
//! For the fan-out bench it also serves `StreamTrades` as a plain tonic application
//! would: while someone subscribes, each order placed through a session makes a trade;
//! the trades of each millisecond go out in one broadcast, and every subscriber's task
//! turns the batch into its own `TradeBatch` message, which tonic encodes for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use divmid::api::proto;
use divmid::api::proto::market_data_server::{MarketData, MarketDataServer};
use divmid::api::proto::metering_server::{Metering, MeteringServer};
use divmid::api::proto::trading_server::{Trading, TradingServer};
use tokio_stream::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Serves the echo services on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), tonic::transport::Error> {
    let echo = Echo::default();
    tokio::spawn(batch_trades(echo.clone()));
    tonic::transport::Server::builder()
        .add_service(TradingServer::new(echo.clone()))
        .add_service(MarketDataServer::new(echo.clone()))
        .add_service(MeteringServer::new(echo))
        // As the exchange's listener does: small answers go out at once.
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await
}

#[derive(Clone)]
struct Echo {
    seq: Arc<AtomicU64>,
    /// Trades made since the last broadcast.
    pending: Arc<Mutex<Vec<proto::Trade>>>,
    /// Each millisecond's trades, to every `StreamTrades` subscriber.
    trades: broadcast::Sender<Arc<Vec<proto::Trade>>>,
}

impl Default for Echo {
    fn default() -> Echo {
        Echo {
            seq: Arc::default(),
            pending: Arc::default(),
            trades: broadcast::channel(TRADE_BATCHES_KEPT).0,
        }
    }
}

/// Trade batches a subscriber may fall behind before it is ended, as the exchange's
/// `pipeline.broadcast_capacity` by default.
const TRADE_BATCHES_KEPT: usize = 1_024;

/// Messages waiting for one subscriber's client, as the exchange's
/// `stream_buffer_messages` by default.
const SUBSCRIBER_BUFFER: usize = 256;

/// Broadcasts the trades made each millisecond.
async fn batch_trades(echo: Echo) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
    loop {
        tick.tick().await;
        let batch = match echo.pending.lock() {
            Ok(mut pending) if !pending.is_empty() => std::mem::take(&mut *pending),
            _ => continue,
        };
        let _ = echo.trades.send(Arc::new(batch));
    }
}

impl Echo {
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A trade for an order placed through a session, while anyone subscribes.
    fn trade(&self, seq: u64, request: &proto::PlaceOrderRequest) {
        if self.trades.receiver_count() == 0 {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let trade = proto::Trade {
            trade_id: seq.to_string(),
            market: request.market.clone(),
            price: request.price.clone(),
            quantity: request.quantity.clone(),
            taker_side: request.side,
            seq,
            time_ms: now,
        };
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(trade);
        }
    }

    fn placed(&self, request: proto::PlaceOrderRequest) -> proto::PlaceOrderResponse {
        let seq = self.next_seq();
        proto::PlaceOrderResponse {
            order: Some(proto::Order {
                order_id: seq.to_string(),
                filled_quantity: "0.00".to_string(),
                remaining_quantity: request.quantity.clone(),
                status: proto::OrderStatus::Open as i32,
                created_seq: seq,
                client_order_id: request.client_order_id,
                market: request.market,
                side: request.side,
                r#type: request.r#type,
                price: request.price,
                quantity: request.quantity,
                time_in_force: request.time_in_force,
                post_only: request.post_only,
                self_trade_prevention: request.self_trade_prevention,
            }),
            fills: Vec::new(),
            fills_truncated: false,
        }
    }

    fn canceled(&self, request: proto::CancelOrderRequest) -> proto::CancelOrderResponse {
        let seq = self.next_seq();
        proto::CancelOrderResponse {
            order: Some(proto::Order {
                order_id: seq.to_string(),
                client_order_id: request.client_order_id,
                market: "DVM-USD".to_string(),
                price: "1.0000".to_string(),
                quantity: "0.01".to_string(),
                filled_quantity: "0.00".to_string(),
                remaining_quantity: "0.00".to_string(),
                status: proto::OrderStatus::Canceled as i32,
                created_seq: seq,
                ..Default::default()
            }),
        }
    }

    fn session_response(&self, request: proto::OrderSessionRequest) -> proto::OrderSessionResponse {
        use proto::order_session_request::Command;
        use proto::order_session_response::Result as Answer;
        let result = match request.command {
            Some(Command::Place(order)) => {
                self.trade(self.seq.load(Ordering::Relaxed) + 1, &order);
                Answer::Placed(self.placed(order))
            }
            Some(Command::Cancel(cancel)) => Answer::Canceled(self.canceled(cancel)),
            _ => Answer::Error(proto::SessionError {
                code: tonic::Code::Unimplemented as i32,
                message: "the echo server answers place and cancel".to_string(),
            }),
        };
        proto::OrderSessionResponse::of(request.request_id, result)
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the echo server answers orders and charges only",
    ))
}

#[tonic::async_trait]
impl Trading for Echo {
    async fn place_order(
        &self,
        request: Request<proto::PlaceOrderRequest>,
    ) -> Result<Response<proto::PlaceOrderResponse>, Status> {
        Ok(Response::new(self.placed(request.into_inner())))
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::CancelOrderResponse>, Status> {
        Ok(Response::new(self.canceled(request.into_inner())))
    }

    type OrderSessionStream = BoxStream<proto::OrderSessionResponse>;

    async fn order_session(
        &self,
        request: Request<Streaming<proto::OrderSessionRequest>>,
    ) -> Result<Response<Self::OrderSessionStream>, Status> {
        let echo = self.clone();
        let responses = request
            .into_inner()
            .map(move |request| request.map(|request| echo.session_response(request)));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn cancel_all_orders(
        &self,
        _: Request<proto::CancelAllOrdersRequest>,
    ) -> Result<Response<proto::CancelAllOrdersResponse>, Status> {
        unimplemented()
    }

    async fn amend_order(
        &self,
        _: Request<proto::AmendOrderRequest>,
    ) -> Result<Response<proto::AmendOrderResponse>, Status> {
        unimplemented()
    }

    async fn get_order(
        &self,
        _: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::GetOrderResponse>, Status> {
        unimplemented()
    }

    async fn list_orders(
        &self,
        _: Request<proto::ListOrdersRequest>,
    ) -> Result<Response<proto::ListOrdersResponse>, Status> {
        unimplemented()
    }

    async fn list_fills(
        &self,
        _: Request<proto::ListFillsRequest>,
    ) -> Result<Response<proto::ListFillsResponse>, Status> {
        unimplemented()
    }

    type StreamOrderUpdatesStream = BoxStream<proto::OrderUpdate>;

    async fn stream_order_updates(
        &self,
        _: Request<proto::StreamOrderUpdatesRequest>,
    ) -> Result<Response<Self::StreamOrderUpdatesStream>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl Metering for Echo {
    async fn charge(
        &self,
        request: Request<proto::ChargeRequest>,
    ) -> Result<Response<proto::ChargeResponse>, Status> {
        Ok(Response::new(proto::ChargeResponse {
            amount: request.into_inner().amount,
            seq: self.next_seq(),
        }))
    }

    type ChargeSessionStream = BoxStream<proto::ChargeSessionResponse>;

    async fn charge_session(
        &self,
        request: Request<Streaming<proto::ChargeSessionRequest>>,
    ) -> Result<Response<Self::ChargeSessionStream>, Status> {
        let echo = self.clone();
        let responses = request.into_inner().map(move |request| {
            request.map(|request| proto::ChargeSessionResponse {
                request_id: request.request_id,
                result: Some(proto::charge_session_response::Result::Charged(
                    proto::ChargeResponse {
                        amount: request
                            .charge
                            .map(|charge| charge.amount)
                            .unwrap_or_default(),
                        seq: echo.next_seq(),
                    },
                )),
            })
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn get_service_usage(
        &self,
        _: Request<proto::GetServiceUsageRequest>,
    ) -> Result<Response<proto::GetServiceUsageResponse>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl MarketData for Echo {
    type StreamOrderBookStream = BoxStream<proto::BookUpdate>;
    type StreamTradesStream = BoxStream<proto::TradeBatch>;

    async fn stream_trades(
        &self,
        _: Request<proto::StreamTradesRequest>,
    ) -> Result<Response<Self::StreamTradesStream>, Status> {
        let mut batches = self.trades.subscribe();
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        tokio::spawn(async move {
            loop {
                let message = match batches.recv().await {
                    // Each subscriber's own copy, encoded for it by tonic.
                    Ok(batch) => Ok(proto::TradeBatch::of(batch.to_vec())),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Err(Status::aborted("the stream fell behind"))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let ended = message.is_err();
                if sender.send(message).await.is_err() || ended {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn get_markets(
        &self,
        _: Request<proto::GetMarketsRequest>,
    ) -> Result<Response<proto::GetMarketsResponse>, Status> {
        unimplemented()
    }

    async fn get_order_book(
        &self,
        _: Request<proto::GetOrderBookRequest>,
    ) -> Result<Response<proto::GetOrderBookResponse>, Status> {
        unimplemented()
    }

    async fn stream_order_book(
        &self,
        _: Request<proto::StreamOrderBookRequest>,
    ) -> Result<Response<Self::StreamOrderBookStream>, Status> {
        unimplemented()
    }

    async fn get_ticker(
        &self,
        _: Request<proto::GetTickerRequest>,
    ) -> Result<Response<proto::GetTickerResponse>, Status> {
        unimplemented()
    }

    async fn get_candles(
        &self,
        _: Request<proto::GetCandlesRequest>,
    ) -> Result<Response<proto::GetCandlesResponse>, Status> {
        unimplemented()
    }

    async fn get_issue_prices(
        &self,
        _: Request<proto::GetIssuePricesRequest>,
    ) -> Result<Response<proto::GetIssuePricesResponse>, Status> {
        unimplemented()
    }
}
