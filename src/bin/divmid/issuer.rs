//! `divmid issuer`: accounts, minting, prices, the supply and tokens.

use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use tonic::transport::Channel;

use crate::cli::*;
use crate::{show, Caller};

fn tier(tier: TierArgument) -> i32 {
    match tier {
        TierArgument::Public => proto::Tier::Public as i32,
        TierArgument::Subscriber => proto::Tier::Subscriber as i32,
    }
}

pub async fn issuer(
    mut client: IssuerClient<Channel>,
    caller: &Caller,
    command: IssuerCommand,
) -> Result<(), String> {
    match command {
        IssuerCommand::CreateAccount {
            name,
            tier: t,
            role,
        } => {
            let role = match role {
                RoleArgument::Trader => proto::Role::Trader,
                RoleArgument::Service => proto::Role::Service,
            } as i32;
            let request = proto::CreateAccountRequest {
                name,
                tier: tier(t),
                role,
            };
            let created = call!(client, create_account, caller, request);
            show(caller, &created, |created| {
                println!(
                    "account_id: {}\napi_token: {}",
                    created.account_id, created.api_token
                )
            });
        }
        IssuerCommand::Mint { amount, key, memo } => {
            let request = proto::MintRequest {
                amount,
                memo,
                idempotency_key: key,
            };
            let minted = call!(client, mint, caller, request);
            show(caller, &minted, |minted| {
                println!("total supply: {} DVM", minted.total_supply)
            });
        }
        IssuerCommand::SetPrice { tier: t, price } => {
            let request = proto::SetIssuePriceRequest {
                tier: tier(t),
                price,
            };
            let set = call!(client, set_issue_price, caller, request);
            show(caller, &set, |_| println!("price set"));
        }
        IssuerCommand::Supply => {
            let supply = call!(client, get_supply, caller, proto::GetSupplyRequest {});
            show(caller, &supply, |supply| {
                println!(
                    "minted: {}\ntreasury: {}\ncirculating: {}\nspent: {}\nseq: {}",
                    supply.minted, supply.treasury, supply.circulating, supply.spent, supply.seq
                )
            });
        }
        IssuerCommand::RotateToken { account } => {
            change_token(client, caller, account, true).await?
        }
        IssuerCommand::RevokeToken { account } => {
            change_token(client, caller, account, false).await?
        }
    }
    Ok(())
}

/// Rotates an account's token and prints the new one, or revokes it.
async fn change_token(
    mut client: IssuerClient<Channel>,
    caller: &Caller,
    account_id: String,
    rotate: bool,
) -> Result<(), String> {
    if rotate {
        let request = proto::RotateTokenRequest { account_id };
        let rotated = call!(client, rotate_token, caller, request);
        show(caller, &rotated, |rotated| {
            println!("api_token: {}", rotated.api_token)
        });
    } else {
        let request = proto::RevokeTokenRequest { account_id };
        let revoked = call!(client, revoke_token, caller, request);
        show(caller, &revoked, |_| println!("token revoked"));
    }
    Ok(())
}
