//! The prepaid pool from the command line: a holder's automatic top-up, spend limits and
//! usage, a service's charges piped in through one session, and the issue prices.

use divmid::api::proto;
use divmid::api::proto::market_data_client::MarketDataClient;
use divmid::api::proto::metering_client::MeteringClient;
use divmid::api::proto::wallet_client::WalletClient;
use tokio::io::AsyncBufReadExt;
use tonic::transport::Channel;

use crate::cli::{AutoTopUpArguments, SpendLimitArguments, UsageArguments, UsageIntervalArgument};
use crate::{date, show, status, Caller};

const THIRTY_DAYS_MS: u64 = 30 * 24 * 60 * 60 * 1_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

pub async fn auto_top_up(
    mut client: WalletClient<Channel>,
    caller: &Caller,
    arguments: AutoTopUpArguments,
) -> Result<(), String> {
    if arguments.threshold.is_some() || arguments.off {
        let request = proto::SetAutoTopUpRequest {
            enabled: !arguments.off,
            threshold: arguments.threshold.unwrap_or_default(),
            target: arguments.target.unwrap_or_default(),
            max_price: arguments.max_price.unwrap_or_default(),
            monthly_max_usd: arguments.monthly_max_usd.unwrap_or_default(),
        };
        let set = call!(client, set_auto_top_up, caller, request);
        let done = if arguments.off { "off" } else { "set" };
        show(caller, &set, |set| {
            println!("auto top-up {done} (seq {})", set.seq)
        });
        return Ok(());
    }
    let settings = call!(
        client,
        get_auto_top_up,
        caller,
        proto::GetAutoTopUpRequest {}
    );
    show(caller, &settings, |settings| {
        println!("enabled: {}", settings.enabled);
        println!("threshold: {} DVM", settings.threshold);
        println!("target: {} DVM", settings.target);
        println!("max price: {} USD per DVM", settings.max_price);
        println!("monthly max: {} USD", settings.monthly_max_usd);
        println!("spent this month: {} USD", settings.month_spent_usd);
    });
    Ok(())
}

pub async fn spend_limit(
    mut client: WalletClient<Channel>,
    caller: &Caller,
    arguments: SpendLimitArguments,
) -> Result<(), String> {
    if let Some(service) = arguments.service {
        if arguments.daily_max.is_none() && !arguments.remove {
            return Err("--service needs --daily-max DVM or --remove".to_string());
        }
        let request = proto::SetSpendLimitRequest {
            service_account_id: service.clone(),
            daily_max: arguments.daily_max.clone().unwrap_or_default(),
        };
        let set = call!(client, set_spend_limit, caller, request);
        show(caller, &set, |set| match &arguments.daily_max {
            Some(daily_max) => println!(
                "service {service} may charge at most {daily_max} DVM a day (seq {})",
                set.seq
            ),
            None => println!("no limit on service {service} (seq {})", set.seq),
        });
        return Ok(());
    }
    let listed = call!(
        client,
        list_spend_limits,
        caller,
        proto::ListSpendLimitsRequest {}
    );
    show(caller, &listed, |listed| {
        if listed.limits.is_empty() {
            println!("no spend limits");
        }
        for limit in &listed.limits {
            println!(
                "service {}: {} DVM a day, {} charged today",
                limit.service_account_id, limit.daily_max, limit.spent_today
            );
        }
    });
    Ok(())
}

pub async fn usage(
    mut client: WalletClient<Channel>,
    caller: &Caller,
    arguments: UsageArguments,
) -> Result<(), String> {
    let to_ms = arguments.to_ms.unwrap_or_else(now_ms);
    let interval = match arguments.interval {
        UsageIntervalArgument::Hour => proto::UsageInterval::Hour,
        UsageIntervalArgument::Day => proto::UsageInterval::Day,
    } as i32;
    let mut page_token = String::new();
    loop {
        let request = proto::GetUsageRequest {
            from_ms: arguments
                .from_ms
                .unwrap_or(to_ms.saturating_sub(THIRTY_DAYS_MS)),
            to_ms,
            interval,
            page_size: 500,
            page_token,
        };
        let page = call!(client, get_usage, caller, request);
        show(caller, &page, print_usage);
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

fn print_usage(page: &proto::GetUsageResponse) {
    {
        for top_up in &page.top_ups {
            println!(
                "{} top-up: {} DVM for {} USD (seq {})",
                date(top_up.time_ms),
                top_up.quantity,
                top_up.cost,
                top_up.seq
            );
        }
        if page.top_ups_truncated {
            println!("(more top-ups: ask for a shorter range)");
        }
        for row in &page.rows {
            println!(
                "{} service {}: {} charges, {} DVM",
                date(row.interval_start_ms),
                row.service_account_id,
                row.charges,
                row.amount
            );
        }
        if page.next_page_token.is_empty() {
            println!(
                "(counted up to seq {}; kept from {})",
                page.seq,
                date(page.kept_from_ms)
            );
        }
    }
}

/// One line of standard input as a charge: `ACCOUNT AMOUNT KEY [MEMO...]`.
fn charge_of(line: &str) -> Result<proto::ChargeRequest, &'static str> {
    let mut fields = line.trim().splitn(4, char::is_whitespace);
    let mut next = || fields.next().filter(|field| !field.is_empty());
    let (Some(account_id), Some(amount), Some(key)) = (next(), next(), next()) else {
        return Err("expected ACCOUNT AMOUNT KEY [MEMO]");
    };
    let memo = next().unwrap_or_default().trim();
    Ok(proto::ChargeRequest {
        account_id: account_id.to_string(),
        amount: amount.to_string(),
        idempotency_key: key.to_string(),
        memo: memo.to_string(),
    })
}

/// Charges every line of standard input through one `ChargeSession`, as lines arrive,
/// printing each answer in order (the request id is the line number). Returns an error
/// when any line was refused or malformed.
pub async fn charge_session(
    mut client: MeteringClient<Channel>,
    caller: &Caller,
) -> Result<(), String> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<proto::ChargeSessionRequest>(1_024);
    let reader = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut malformed = 0u64;
        let mut number = 0u64;
        while let Ok(Some(line)) = lines.next_line().await {
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            match charge_of(&line) {
                Ok(charge) => {
                    let request = proto::ChargeSessionRequest {
                        request_id: number,
                        charge: Some(charge),
                    };
                    if sender.send(request).await.is_err() {
                        break;
                    }
                }
                Err(reason) => {
                    eprintln!("line {number}: {reason}");
                    malformed += 1;
                }
            }
        }
        malformed
    });
    let requests = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut responses = call!(client, charge_session, caller, requests);
    let mut refused = 0u64;
    while let Some(response) = responses.message().await.map_err(status)? {
        use proto::charge_session_response::Result as Answer;
        let line = response.request_id;
        match &response.result {
            Some(Answer::Charged(_)) => {}
            Some(Answer::Error(_)) => refused += 1,
            None => return Err(format!("line {line}: an empty answer")),
        }
        show(caller, &response, |response| match &response.result {
            Some(Answer::Charged(charged)) => println!(
                "line {line}: charged {} DVM (seq {})",
                charged.amount, charged.seq
            ),
            Some(Answer::Error(error)) => {
                let code = tonic::Code::from(error.code);
                eprintln!("line {line}: {code:?}: {}", error.message);
            }
            None => {}
        });
    }
    let malformed = reader.await.map_err(|error| error.to_string())?;
    match refused + malformed {
        0 => Ok(()),
        failed => Err(format!("{failed} lines were not charged")),
    }
}

pub async fn issue_prices(
    mut client: MarketDataClient<Channel>,
    caller: &Caller,
) -> Result<(), String> {
    let prices = client
        .get_issue_prices(proto::GetIssuePricesRequest {})
        .await
        .map_err(status)?
        .into_inner();
    show(caller, &prices, print_issue_prices);
    Ok(())
}

fn print_issue_prices(prices: &proto::GetIssuePricesResponse) {
    let tier_name = |tier: i32| {
        proto::Tier::try_from(tier)
            .map(|tier| tier.as_str_name())
            .unwrap_or("?")
    };
    if prices.prices.is_empty() {
        println!("the issuer has set no price yet");
    }
    for now in &prices.prices {
        println!("{}: {} USD per DVM", tier_name(now.tier), now.price);
    }
    for change in &prices.changes {
        println!(
            "{} seq {} {} set to {}",
            date(change.time_ms),
            change.seq,
            tier_name(change.tier),
            change.price
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_account_amount_key_and_an_optional_memo() {
        let charge = charge_of("7 0.001 click-1 page view /home").expect("a charge");
        assert_eq!(
            (
                charge.account_id.as_str(),
                charge.amount.as_str(),
                charge.idempotency_key.as_str()
            ),
            ("7", "0.001", "click-1")
        );
        assert_eq!(charge.memo, "page view /home");
        assert_eq!(charge_of("7 0.001 k").expect("no memo").memo, "");
        assert!(charge_of("7 0.001").is_err());
    }
}
