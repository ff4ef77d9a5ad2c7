//! `divmid wallet`: balances, deposits, withdrawals, purchases and the ledger; the prepaid
//! pool's commands are in `prepaid.rs`.

use divmid::api::proto;
use divmid::api::proto::wallet_client::WalletClient;
use tonic::transport::Channel;

use crate::cli::*;
use crate::{date, prepaid};
use crate::{show, Caller};

fn print_balances(balances: &[proto::Balance]) {
    for balance in balances {
        println!(
            "{}: available {} held {}",
            balance.asset, balance.available, balance.held
        );
    }
}

pub async fn wallet(
    mut client: WalletClient<Channel>,
    caller: &Caller,
    command: WalletCommand,
) -> Result<(), String> {
    match command {
        // The prepaid pool's commands have their own file.
        WalletCommand::AutoTopUp(arguments) => {
            return prepaid::auto_top_up(client, caller, arguments).await
        }
        WalletCommand::SpendLimit(arguments) => {
            return prepaid::spend_limit(client, caller, arguments).await
        }
        WalletCommand::Usage(arguments) => return prepaid::usage(client, caller, arguments).await,
        WalletCommand::Ledger {
            page_size,
            page_token,
        } => {
            let request = proto::ListLedgerEntriesRequest {
                page_size,
                page_token,
            };
            let response = call!(client, list_ledger_entries, caller, request);
            show(caller, &response, print_ledger);
        }
        command => money(client, caller, command).await?,
    }
    Ok(())
}

/// Balances, deposits, withdrawals and purchases.
async fn money(
    mut client: WalletClient<Channel>,
    caller: &Caller,
    command: WalletCommand,
) -> Result<(), String> {
    match command {
        WalletCommand::Balances => {
            let response = call!(client, get_balances, caller, proto::GetBalancesRequest {});
            show(caller, &response, |response| {
                print_balances(&response.balances)
            });
        }
        WalletCommand::Deposit {
            source,
            amount,
            reference,
            key,
        } => {
            let request = proto::DepositRequest {
                source: source.wire(),
                amount,
                source_reference: reference,
                idempotency_key: key,
            };
            let response = call!(client, deposit, caller, request);
            show(caller, &response, |response| {
                print_balances(response.balance.as_slice())
            });
        }
        WalletCommand::Withdraw {
            amount,
            destination,
            key,
        } => {
            let request = proto::WithdrawRequest {
                amount,
                destination,
                idempotency_key: key,
            };
            let response = call!(client, withdraw, caller, request);
            show(caller, &response, |response| {
                print_balances(response.balance.as_slice())
            });
        }
        WalletCommand::Buy {
            quantity,
            max_price,
            key,
        } => {
            let request = proto::BuyDivmidsRequest {
                quantity,
                max_price,
                idempotency_key: key,
            };
            let response = call!(client, buy_divmids, caller, request);
            show(caller, &response, |response| {
                println!("cost: {} USD", response.cost);
                print_balances(&response.balances);
            });
        }
        _ => unreachable!("the other commands are answered by wallet"),
    }
    Ok(())
}

fn print_ledger(response: &proto::ListLedgerEntriesResponse) {
    for entry in &response.entries {
        println!(
            "seq {} {} {} {} available {:>+} held {:>+} -> {} / {} ({})",
            entry.seq,
            date(entry.time_ms),
            entry.kind,
            entry.asset,
            entry.available_change,
            entry.held_change,
            entry.available_after,
            entry.held_after,
            entry.reference
        );
    }
    if !response.next_page_token.is_empty() {
        println!("next page: --page-token {}", response.next_page_token);
    }
}
