//! `divmid issuer`: accounts, minting, prices, the supply and tokens.

use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use tonic::transport::Channel;

use crate::cli::*;

fn tier(tier: TierArgument) -> i32 {
    match tier {
        TierArgument::Public => proto::Tier::Public as i32,
        TierArgument::Subscriber => proto::Tier::Subscriber as i32,
    }
}

pub async fn issuer(
    mut client: IssuerClient<Channel>,
    token: &Option<String>,
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
            let created = call!(client, create_account, token, request);
            println!(
                "account_id: {}\napi_token: {}",
                created.account_id, created.api_token
            );
        }
        IssuerCommand::Mint { amount, key, memo } => {
            let request = proto::MintRequest {
                amount,
                memo,
                idempotency_key: key,
            };
            let minted = call!(client, mint, token, request);
            println!("total supply: {} DVM", minted.total_supply);
        }
        IssuerCommand::SetPrice { tier: t, price } => {
            let request = proto::SetIssuePriceRequest {
                tier: tier(t),
                price,
            };
            call!(client, set_issue_price, token, request);
            println!("price set");
        }
        IssuerCommand::Supply => {
            let supply = call!(client, get_supply, token, proto::GetSupplyRequest {});
            println!(
                "minted: {}\ntreasury: {}\ncirculating: {}\nspent: {}\nseq: {}",
                supply.minted, supply.treasury, supply.circulating, supply.spent, supply.seq
            );
        }
        IssuerCommand::RotateToken { account } => {
            change_token(client, token, account, true).await?
        }
        IssuerCommand::RevokeToken { account } => {
            change_token(client, token, account, false).await?
        }
    }
    Ok(())
}

/// Rotates an account's token and prints the new one, or revokes it.
async fn change_token(
    mut client: IssuerClient<Channel>,
    token: &Option<String>,
    account_id: String,
    rotate: bool,
) -> Result<(), String> {
    if rotate {
        let request = proto::RotateTokenRequest { account_id };
        let rotated = call!(client, rotate_token, token, request);
        println!("api_token: {}", rotated.api_token);
    } else {
        let request = proto::RevokeTokenRequest { account_id };
        call!(client, revoke_token, token, request);
        println!("token revoked");
    }
    Ok(())
}
