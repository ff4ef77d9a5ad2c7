//! The gRPC services: each handler authenticates, converts the request, submits it, and
//! converts the outcome.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{generate_token, hash_token, Caller};
use super::context::{
    amount, balance, micros_to_units, parse_amount, parse_id, parse_issue_price, required, Context,
};
use super::history;
use super::proto;
use super::status::from_reject;

/// Events read from the store per step of a history page.
const HISTORY_EVENTS_PER_READ: usize = 256;
use crate::command::{Command, NewOrder, OrderRef};
use crate::event::{OrderView, Reply};
use crate::market_data::{CANDLES_PER_QUERY_MAX, MINUTE_MS};
use crate::pipeline::{Answer, Query};
use crate::types::{
    AccountId, Asset, FundingSourceKind, OrderId, OrderType, Role, SelfTradePrevention, Side, Tier,
    TimeInForce,
};

/// The services, sharing one context.
#[derive(Clone)]
pub struct Api {
    context: Arc<Context>,
}

impl Api {
    /// Services over `context`.
    pub fn new(context: Arc<Context>) -> Api {
        Api { context }
    }

    /// The shared context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    fn market_data_ready(&self) -> Result<(), Status> {
        if self
            .context
            .market_data
            .ready
            .load(std::sync::atomic::Ordering::Acquire)
        {
            Ok(())
        } else {
            Err(Status::unavailable(
                "market data is catching up with the journal; retry shortly",
            ))
        }
    }

    /// The authenticated caller, if it has `role`. A peer that has failed to
    /// authenticate too often this minute is refused whatever it presents.
    fn caller<T>(&self, request: &Request<T>, role: Role) -> Result<Caller, Status> {
        let peer = super::idle::connection_of(request.extensions())
            .and_then(|connection| connection.remote)
            .map(|address| address.ip());
        let failures = &self.context.auth_failures;
        failures.check(peer)?;
        match self.context.tokens.authenticate(request) {
            Ok(caller) => caller.require(role),
            Err(status) => {
                failures.record(peer);
                Err(status)
            }
        }
    }
}

impl Api {
    /// Commits an account's new token hash (or its revocation), then makes the
    /// authentication table follow: the old token stops working once this returns.
    async fn set_token(
        &self,
        account: crate::types::AccountId,
        token_hash: Option<[u8; 32]>,
    ) -> Result<(), Status> {
        let committed = self
            .context
            .command(Command::SetToken {
                account,
                token_hash,
            })
            .await?;
        let Reply::TokenChanged { account, role } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        let seq = committed.events.last().map_or(0, |event| event.seq);
        self.context
            .tokens
            .set(Caller { account, role }, token_hash, seq);
        Ok(())
    }
}

fn unexpected(reply: &Reply) -> Status {
    Status::internal(format!("unexpected reply {reply:?}"))
}

fn tier(value: i32) -> Result<Tier, Status> {
    required("tier", value, |value| {
        match proto::Tier::try_from(value).ok()? {
            proto::Tier::Public => Some(Tier::Public),
            proto::Tier::Subscriber => Some(Tier::Subscriber),
            proto::Tier::Unspecified => None,
        }
    })
}

#[tonic::async_trait]
impl proto::issuer_server::Issuer for Api {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::CreateAccountResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let message = request.into_inner();
        let tier = tier(message.tier)?;
        let role = required("role", message.role, |value| {
            match proto::Role::try_from(value).ok()? {
                proto::Role::Trader => Some(Role::Trader),
                proto::Role::Service => Some(Role::Service),
                proto::Role::Issuer => Some(Role::Issuer),
                proto::Role::Unspecified => None,
            }
        })?;
        let token = generate_token().map_err(|_| Status::internal("no randomness for a token"))?;
        let token_hash = hash_token(&token);
        let committed = self
            .context
            .command(Command::CreateAccount {
                name: message.name.into(),
                role,
                tier,
                token_hash,
            })
            .await?;
        let Reply::AccountCreated { account } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        self.context
            .tokens
            .register(token_hash, Caller { account, role });
        Ok(Response::new(proto::CreateAccountResponse {
            account_id: account.0.to_string(),
            api_token: token,
        }))
    }

    async fn rotate_token(
        &self,
        request: Request<proto::RotateTokenRequest>,
    ) -> Result<Response<proto::RotateTokenResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let account = AccountId(parse_id("account_id", &request.get_ref().account_id)?);
        let token = generate_token().map_err(|_| Status::internal("no randomness for a token"))?;
        self.set_token(account, Some(hash_token(&token))).await?;
        Ok(Response::new(proto::RotateTokenResponse {
            api_token: token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let account = AccountId(parse_id("account_id", &request.get_ref().account_id)?);
        self.set_token(account, None).await?;
        Ok(Response::new(proto::RevokeTokenResponse {}))
    }

    async fn mint(
        &self,
        request: Request<proto::MintRequest>,
    ) -> Result<Response<proto::MintResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let message = request.into_inner();
        let committed = self
            .context
            .command(Command::Mint {
                amount: parse_amount("amount", &message.amount)?,
                memo: message.memo.into(),
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::Minted(supply) = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::MintResponse {
            total_supply: amount(supply.minted),
        }))
    }

    async fn set_issue_price(
        &self,
        request: Request<proto::SetIssuePriceRequest>,
    ) -> Result<Response<proto::SetIssuePriceResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let message = request.into_inner();
        let tier = tier(message.tier)?;
        let price = parse_issue_price("price", &message.price)?;
        self.context
            .command(Command::SetIssuePrice { tier, price })
            .await?;
        Ok(Response::new(proto::SetIssuePriceResponse {}))
    }

    async fn get_supply(
        &self,
        request: Request<proto::GetSupplyRequest>,
    ) -> Result<Response<proto::GetSupplyResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let Answer::Supply(supply) = self.context.query(Query::Supply).await? else {
            return Err(Status::internal("unexpected answer"));
        };
        Ok(Response::new(proto::GetSupplyResponse {
            minted: amount(supply.minted),
            treasury: amount(supply.treasury),
            circulating: amount(supply.circulating),
            spent: amount(supply.spent),
            seq: self.context.pipeline.committed_seq(),
        }))
    }
}

#[tonic::async_trait]
impl proto::wallet_server::Wallet for Api {
    async fn get_balances(
        &self,
        request: Request<proto::GetBalancesRequest>,
    ) -> Result<Response<proto::GetBalancesResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let Answer::Balances(balances) =
            self.context.query(Query::Balances(caller.account)).await?
        else {
            return Err(Status::internal("unexpected answer"));
        };
        Ok(Response::new(proto::GetBalancesResponse {
            balances: Asset::ALL
                .iter()
                .map(|asset| balance(*asset, balances[asset.index()]))
                .collect(),
        }))
    }

    async fn deposit(
        &self,
        request: Request<proto::DepositRequest>,
    ) -> Result<Response<proto::DepositResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let source = required(
            "source",
            message.source,
            |value| match proto::Source::try_from(value).ok()? {
                proto::Source::Card => Some(FundingSourceKind::Card),
                proto::Source::Paypal => Some(FundingSourceKind::Paypal),
                proto::Source::Egold => Some(FundingSourceKind::Egold),
                proto::Source::Unspecified => None,
            },
        )?;
        let deposited = parse_amount("amount", &message.amount)?;
        // Checked here as the sequencer would, before the processor is asked: a deposit
        // the exchange would refuse must not be authorized.
        let key_length_max = self.context.config.engine.limits.key_length_max;
        crate::error::check_text(
            "idempotency_key",
            &message.idempotency_key,
            key_length_max,
            true,
        )
        .map_err(|reject| from_reject(&reject))?;
        let processor = self.context.funding.of(source);
        // Only what may be kept goes on: a card number stops here.
        let source_reference = processor.stored_reference(&message.source_reference);
        let command = Command::Deposit {
            account: caller.account,
            source,
            amount: deposited,
            source_reference: source_reference.into(),
            idempotency_key: message.idempotency_key.clone().into(),
        };
        // A retry of an applied deposit is answered without asking the processor again.
        let Answer::AppliedReply(applied) = self
            .context
            .query(Query::AppliedReply(Box::new(command.clone())))
            .await?
        else {
            return Err(Status::internal("unexpected answer"));
        };
        let reply = match applied {
            Some(reply) => reply,
            None => {
                processor
                    .authorize(
                        &message.source_reference,
                        deposited.0,
                        &message.idempotency_key,
                    )
                    .map_err(|reject| from_reject(&reject))?;
                self.context.command(command).await?.reply
            }
        };
        let Reply::Funds(after) = reply else {
            return Err(unexpected(&reply));
        };
        Ok(Response::new(proto::DepositResponse {
            balance: Some(balance(Asset::Usd, after)),
        }))
    }

    async fn withdraw(
        &self,
        request: Request<proto::WithdrawRequest>,
    ) -> Result<Response<proto::WithdrawResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let committed = self
            .context
            .command(Command::Withdraw {
                account: caller.account,
                amount: parse_amount("amount", &message.amount)?,
                destination: message.destination.into(),
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::Funds(after) = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::WithdrawResponse {
            balance: Some(balance(Asset::Usd, after)),
        }))
    }

    async fn buy_divmids(
        &self,
        request: Request<proto::BuyDivmidsRequest>,
    ) -> Result<Response<proto::BuyDivmidsResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let committed = self
            .context
            .command(Command::BuyDivmids {
                account: caller.account,
                quantity: parse_amount("quantity", &message.quantity)?,
                max_price: parse_issue_price("max_price", &message.max_price)?,
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::DivmidsBought { cost, balances } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::BuyDivmidsResponse {
            cost: amount(cost),
            balances: Asset::ALL
                .iter()
                .map(|asset| balance(*asset, balances[asset.index()]))
                .collect(),
        }))
    }

    async fn list_ledger_entries(
        &self,
        request: Request<proto::ListLedgerEntriesRequest>,
    ) -> Result<Response<proto::ListLedgerEntriesResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let context = Arc::clone(&self.context);
        let (entries, next) = self
            .page_from_history(
                caller.account,
                message.page_size,
                &message.page_token,
                move |event| history::ledger_entries(&context, caller.account, event),
            )
            .await?;
        Ok(Response::new(proto::ListLedgerEntriesResponse {
            entries,
            next_page_token: next,
        }))
    }
}

#[tonic::async_trait]
impl proto::metering_server::Metering for Api {
    async fn charge(
        &self,
        request: Request<proto::ChargeRequest>,
    ) -> Result<Response<proto::ChargeResponse>, Status> {
        let caller = self.caller(&request, Role::Service)?;
        let message = request.into_inner();
        let charged = parse_amount("amount", &message.amount)?;
        let committed = self
            .context
            .command(Command::Charge {
                service: caller.account,
                account: AccountId(parse_id("account_id", &message.account_id)?),
                amount: charged,
                memo: message.memo.into(),
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::Charged { seq, .. } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::ChargeResponse {
            amount: amount(charged),
            seq,
        }))
    }
}

impl Api {
    pub(super) fn new_order(
        &self,
        caller: Caller,
        message: proto::PlaceOrderRequest,
    ) -> Result<NewOrder, Status> {
        let market = self.context.market("market", &message.market)?;
        let side = required("side", message.side, |value| {
            match proto::Side::try_from(value).ok()? {
                proto::Side::Buy => Some(Side::Buy),
                proto::Side::Sell => Some(Side::Sell),
                proto::Side::Unspecified => None,
            }
        })?;
        let order_type = required(
            "type",
            message.r#type,
            |value| match proto::OrderType::try_from(value).ok()? {
                proto::OrderType::Limit => Some(OrderType::Limit),
                proto::OrderType::Market => Some(OrderType::Market),
                proto::OrderType::Unspecified => None,
            },
        )?;
        let time_in_force = match proto::TimeInForce::try_from(message.time_in_force) {
            Ok(proto::TimeInForce::Unspecified) => match order_type {
                OrderType::Limit => TimeInForce::GoodTillCanceled,
                OrderType::Market => TimeInForce::ImmediateOrCancel,
            },
            Ok(proto::TimeInForce::Gtc) => TimeInForce::GoodTillCanceled,
            Ok(proto::TimeInForce::Ioc) => TimeInForce::ImmediateOrCancel,
            Ok(proto::TimeInForce::Fok) => TimeInForce::FillOrKill,
            Err(_) => return Err(Status::invalid_argument("time_in_force: unknown value")),
        };
        let self_trade_prevention =
            match proto::SelfTradePrevention::try_from(message.self_trade_prevention) {
                Ok(
                    proto::SelfTradePrevention::Unspecified
                    | proto::SelfTradePrevention::CancelTaker,
                ) => SelfTradePrevention::CancelTaker,
                Ok(proto::SelfTradePrevention::CancelMaker) => SelfTradePrevention::CancelMaker,
                Ok(proto::SelfTradePrevention::CancelBoth) => SelfTradePrevention::CancelBoth,
                Ok(proto::SelfTradePrevention::Decrement) => SelfTradePrevention::Decrement,
                Err(_) => {
                    return Err(Status::invalid_argument(
                        "self_trade_prevention: unknown value",
                    ))
                }
            };
        let price = match (order_type, message.price.is_empty()) {
            (OrderType::Market, true) => None,
            _ => Some(market.parse_price("price", &message.price)?),
        };
        Ok(NewOrder {
            account: caller.account,
            market: market.id,
            side,
            order_type,
            price,
            quantity: market.parse_quantity("quantity", &message.quantity)?,
            time_in_force,
            post_only: message.post_only,
            client_order_id: (!message.client_order_id.is_empty())
                .then(|| message.client_order_id.into_boxed_str()),
            self_trade_prevention,
        })
    }

    pub(super) fn order_target(order_id: &str, client_order_id: &str) -> Result<OrderRef, Status> {
        match (order_id.is_empty(), client_order_id.is_empty()) {
            (false, true) => Ok(OrderRef::Id(OrderId(parse_id("order_id", order_id)?))),
            (true, false) => Ok(OrderRef::Client(client_order_id.into())),
            _ => Err(Status::invalid_argument(
                "order_id: give exactly one of order_id and client_order_id",
            )),
        }
    }

    /// A page of items derived from the account's events, newest first: events are read
    /// from the store (off the async threads) until the page is full or history ends. The
    /// page token is the sequence number of the last event read.
    async fn page_from_history<T: Send + 'static>(
        &self,
        account: AccountId,
        page_size: u32,
        page_token: &str,
        derive: impl Fn(&crate::event::Event) -> Vec<T> + Send + 'static,
    ) -> Result<(Vec<T>, String), Status> {
        let wanted = self.context.page_size(page_size)?;
        let mut before = if page_token.is_empty() {
            None
        } else {
            Some(parse_id("page_token", page_token)?)
        };
        let history = self.context.history.clone();
        let committed = self.context.pipeline.committed_seq();
        tokio::task::spawn_blocking(move || {
            let mut items = Vec::new();
            loop {
                let page = history
                    .account_events(account, before, HISTORY_EVENTS_PER_READ, committed)
                    .map_err(|error| Status::internal(format!("history: {error}")))?;
                for event in &page.events {
                    items.extend(derive(event));
                    before = Some(event.seq);
                    if items.len() >= wanted {
                        let token = before.map(|seq| seq.to_string()).unwrap_or_default();
                        return Ok((items, token));
                    }
                }
                if page.next.is_none() {
                    return Ok((items, String::new()));
                }
            }
        })
        .await
        .map_err(|_| Status::internal("the history reader stopped"))?
    }

    fn order_reply(&self, view: &OrderView) -> proto::Order {
        self.context.market_at(view.market).order(view)
    }
}

#[tonic::async_trait]
impl proto::trading_server::Trading for Api {
    async fn place_order(
        &self,
        request: Request<proto::PlaceOrderRequest>,
    ) -> Result<Response<proto::PlaceOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let order = self.new_order(caller, request.into_inner())?;
        let committed = self.context.command(Command::PlaceOrder(order)).await?;
        let Some(view) = committed.reply.order(&committed.events) else {
            return Err(unexpected(&committed.reply));
        };
        let market = self.context.market_at(view.market);
        Ok(Response::new(proto::PlaceOrderResponse {
            order: Some(market.order(&view)),
            fills: market.fills_of(view.order_id, &committed.events),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::CancelOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let target = Self::order_target(&message.order_id, &message.client_order_id)?;
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
        let message = request.into_inner();
        let order_id = OrderId(parse_id("order_id", &message.order_id)?);
        let Answer::Order(Some(current)) = self
            .context
            .query(Query::OpenOrder {
                account: caller.account,
                order_id,
            })
            .await?
        else {
            return Err(Status::not_found(
                "order_id: no open order of yours has this id",
            ));
        };
        let market = self.context.market_at(current.market);
        let quantity = (!message.quantity.is_empty())
            .then(|| market.parse_quantity("quantity", &message.quantity))
            .transpose()?;
        let price = (!message.price.is_empty())
            .then(|| market.parse_price("price", &message.price))
            .transpose()?;
        let committed = self
            .context
            .command(Command::AmendOrder {
                account: caller.account,
                order_id,
                quantity,
                price,
            })
            .await?;
        let Reply::Order(view) = &committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::AmendOrderResponse {
            order: Some(market.order(view)),
            fills: market.fills_of(view.order_id, &committed.events),
        }))
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::GetOrderResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let target = Self::order_target(&message.order_id, &message.client_order_id)?;
        // One order looked up, not every open order of the caller built.
        let query = match &target {
            OrderRef::Id(order_id) => Query::OpenOrder {
                account: caller.account,
                order_id: *order_id,
            },
            OrderRef::Client(client_order_id) => Query::OpenOrderByClientId {
                account: caller.account,
                client_order_id: client_order_id.clone(),
            },
        };
        let Answer::Order(open) = self.context.query(query).await? else {
            return Err(Status::internal("unexpected answer"));
        };
        if let Some(view) = open {
            return Ok(Response::new(proto::GetOrderResponse {
                order: Some(self.order_reply(&view)),
            }));
        }
        // Not open: it ended, or it is not the caller's. Ended orders are in history.
        self.context.wait_indexed().await?;
        let history = self.context.history.clone();
        let account = caller.account;
        let found = tokio::task::spawn_blocking(move || match &target {
            OrderRef::Id(id) => history.order(*id),
            OrderRef::Client(client) => history.order_by_client_id(account, client),
        })
        .await
        .map_err(|_| Status::internal("the history reader stopped"))?
        .map_err(|error| Status::internal(format!("history: {error}")))?
        .filter(|view| view.account == caller.account);
        let field = if message.order_id.is_empty() {
            "client_order_id"
        } else {
            "order_id"
        };
        match found {
            Some(view) => Ok(Response::new(proto::GetOrderResponse {
                order: Some(self.order_reply(&view)),
            })),
            None => Err(Status::not_found(format!(
                "{field}: no order of yours matches"
            ))),
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
            let orders = tokio::task::spawn_blocking(move || {
                history.account_orders(account, before, page_size)
            })
            .await
            .map_err(|_| Status::internal("the history reader stopped"))?
            .map_err(|error| Status::internal(format!("history: {error}")))?;
            let next_page_token = if orders.len() == page_size {
                orders
                    .last()
                    .map(|order| order.order_id.0.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            return Ok(Response::new(proto::ListOrdersResponse {
                orders: orders.iter().map(|view| self.order_reply(view)).collect(),
                next_page_token,
            }));
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
            return Err(Status::internal("unexpected answer"));
        };
        let page: Vec<&OrderView> = open
            .iter()
            .filter(|order| order.order_id.0 > after)
            .take(page_size)
            .collect();
        let next_page_token = if page.len() == page_size {
            page.last()
                .map(|order| order.order_id.0.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(proto::ListOrdersResponse {
            orders: page
                .into_iter()
                .map(|view| self.order_reply(view))
                .collect(),
            next_page_token,
        }))
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
        Ok(Response::new(super::session::start(
            self.clone(),
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
        Ok(Response::new(super::updates::start(
            Arc::clone(&self.context),
            caller.account,
            from_seq,
        )?))
    }
}

#[tonic::async_trait]
impl proto::market_data_server::MarketData for Api {
    async fn get_markets(
        &self,
        _request: Request<proto::GetMarketsRequest>,
    ) -> Result<Response<proto::GetMarketsResponse>, Status> {
        let markets = (0..self.context.config.engine.markets.len())
            .map(|index| {
                let market = self.context.market_at(crate::types::MarketId(index as u16));
                let spec = market.spec;
                proto::Market {
                    name: spec.name.clone(),
                    base: spec.base.symbol().to_string(),
                    quote: spec.quote.symbol().to_string(),
                    tick_size: market.price(crate::types::Price(1)),
                    lot_size: market.quantity(crate::types::Quantity(1)),
                    min_quantity: market.quantity(crate::types::Quantity(spec.quantity_min_lots)),
                    max_quantity: market.quantity(crate::types::Quantity(spec.quantity_max_lots)),
                    max_price: market.price(crate::types::Price(spec.price_max_ticks)),
                    max_notional: micros_to_units(spec.notional_max_micros),
                }
            })
            .collect();
        Ok(Response::new(proto::GetMarketsResponse { markets }))
    }

    async fn get_order_book(
        &self,
        request: Request<proto::GetOrderBookRequest>,
    ) -> Result<Response<proto::GetOrderBookResponse>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let depth = match message.depth {
            0 => 50,
            depth @ 1..=1_000 => depth as usize,
            _ => return Err(Status::invalid_argument("depth: at most 1000")),
        };
        let Answer::Book { bids, asks, seq } = self
            .context
            .query(Query::Book {
                market: market.id,
                depth,
            })
            .await?
        else {
            return Err(Status::internal("unexpected answer"));
        };
        let level = |level: &crate::engine::Level| proto::PriceLevel {
            price: market.price(level.price),
            quantity: market.quantity(level.quantity),
        };
        Ok(Response::new(proto::GetOrderBookResponse {
            market: market.spec.name.clone(),
            bids: bids.iter().map(level).collect(),
            asks: asks.iter().map(level).collect(),
            seq,
        }))
    }

    type StreamOrderBookStream = BoxStream<proto::BookUpdate>;

    async fn stream_order_book(
        &self,
        request: Request<proto::StreamOrderBookRequest>,
    ) -> Result<Response<Self::StreamOrderBookStream>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let depth = match message.depth as usize {
            0 => 10,
            depth @ 1..=super::book_stream::STREAM_DEPTH_MAX => depth,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "depth: at most {}",
                    super::book_stream::STREAM_DEPTH_MAX
                )))
            }
        };
        let stream = super::book_stream::start(Arc::clone(&self.context), market.id, depth)?;
        Ok(Response::new(stream))
    }

    type StreamTradesStream = BoxStream<proto::Trade>;

    async fn stream_trades(
        &self,
        request: Request<proto::StreamTradesRequest>,
    ) -> Result<Response<Self::StreamTradesStream>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let (market_id, name) = (market.id, market.spec.name.clone());
        let converter = Arc::clone(&self.context);
        let stream = super::streams::start(
            Arc::clone(&self.context),
            super::context::StreamKind::Anonymous,
            message.from_seq,
            move |event: &crate::event::Event| matches!(&event.kind, crate::event::EventKind::Fill(fill) if fill.market == market_id),
            move |event: &crate::event::Event| {
                let crate::event::EventKind::Fill(fill) = &event.kind else {
                    return Vec::new();
                };
                let market = converter.market_at(fill.market);
                vec![proto::Trade {
                    trade_id: fill.trade_id.0.to_string(),
                    market: name.clone(),
                    price: market.price(fill.price),
                    quantity: market.quantity(fill.quantity),
                    taker_side: super::context::side_to_wire(fill.taker_side) as i32,
                    seq: event.seq,
                    time_ms: event.timestamp_ms,
                }]
            },
        )?;
        Ok(Response::new(stream))
    }

    async fn get_ticker(
        &self,
        request: Request<proto::GetTickerRequest>,
    ) -> Result<Response<proto::GetTickerResponse>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        self.market_data_ready()?;
        let Answer::Book { bids, asks, seq } = self
            .context
            .query(Query::Book {
                market: market.id,
                depth: 1,
            })
            .await?
        else {
            return Err(Status::internal("unexpected answer"));
        };
        let ticker = self
            .context
            .market_data
            .stats
            .read()
            .map_err(|_| Status::internal("market data is unavailable"))?
            .ticker(market.id, super::context::now_ms());
        let price = |price: Option<crate::types::Price>| {
            price.map(|price| market.price(price)).unwrap_or_default()
        };
        Ok(Response::new(proto::GetTickerResponse {
            market: market.spec.name.clone(),
            last_price: price(ticker.last_price),
            best_bid: price(bids.first().map(|level| level.price)),
            best_ask: price(asks.first().map(|level| level.price)),
            volume_24h: market.quantity(crate::types::Quantity(ticker.volume_24h)),
            high_24h: price(ticker.high_24h),
            low_24h: price(ticker.low_24h),
            seq,
        }))
    }

    async fn get_candles(
        &self,
        request: Request<proto::GetCandlesRequest>,
    ) -> Result<Response<proto::GetCandlesResponse>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let interval_ms =
            required(
                "interval",
                message.interval,
                |value| match proto::CandleInterval::try_from(value).ok()? {
                    proto::CandleInterval::CandleInterval1m => Some(MINUTE_MS),
                    proto::CandleInterval::CandleInterval5m => Some(5 * MINUTE_MS),
                    proto::CandleInterval::CandleInterval1h => Some(60 * MINUTE_MS),
                    proto::CandleInterval::CandleInterval1d => Some(24 * 60 * MINUTE_MS),
                    proto::CandleInterval::Unspecified => None,
                },
            )?;
        if message.to_ms <= message.from_ms {
            return Err(Status::invalid_argument("to_ms: must be after from_ms"));
        }
        if (message.to_ms - message.from_ms) / interval_ms > CANDLES_PER_QUERY_MAX as u64 {
            return Err(Status::invalid_argument(format!(
                "to_ms: the range spans more than {CANDLES_PER_QUERY_MAX} candles"
            )));
        }
        self.market_data_ready()?;
        let candles = self
            .context
            .market_data
            .stats
            .read()
            .map_err(|_| Status::internal("market data is unavailable"))?
            .candles(market.id, interval_ms, message.from_ms, message.to_ms);
        Ok(Response::new(proto::GetCandlesResponse {
            candles: candles
                .iter()
                .map(|candle| proto::Candle {
                    open_time_ms: candle.open_time_ms,
                    open: market.price(candle.open),
                    high: market.price(candle.high),
                    low: market.price(candle.low),
                    close: market.price(candle.close),
                    volume: market.quantity(crate::types::Quantity(candle.volume)),
                })
                .collect(),
        }))
    }
}
