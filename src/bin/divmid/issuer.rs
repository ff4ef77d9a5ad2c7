//! `divmid issuer`: accounts, minting, prices, the supply and tokens.

use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
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
        IssuerCommand::Backup { out } => backup(client, caller, &out).await?,
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

/// Streams a backup into `out`: written to `out.partial` first, its SHA-256 checked
/// against the one the server sent and the one the file ends with, then renamed.
async fn backup(
    mut client: IssuerClient<Channel>,
    caller: &Caller,
    out: &Path,
) -> Result<(), String> {
    if out.exists() {
        return Err(format!(
            "{} exists: choose a new file for the backup",
            out.display()
        ));
    }
    let partial = out.with_extension("partial");
    let mut file = private_file(&partial)
        .map_err(|error| format!("cannot create {}: {error}", partial.display()))?;
    let request = crate::authorized(&caller.token, proto::BackupRequest {})?;
    let mut chunks = client
        .backup(request)
        .await
        .map_err(crate::status)?
        .into_inner();
    let mut received = Received::default();
    let mut bytes = 0;
    let last = loop {
        let chunk = match chunks.message().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break None,
            Err(refused) => {
                let _ = std::fs::remove_file(&partial);
                return Err(crate::status(refused));
            }
        };
        received.take(&chunk.data);
        bytes += chunk.data.len() as u64;
        file.write_all(&chunk.data)
            .map_err(|error| format!("cannot write {}: {error}", partial.display()))?;
        if !chunk.sha256.is_empty() {
            break Some(chunk);
        }
    };
    let checked = last
        .ok_or_else(|| "the server ended the backup before its last chunk".to_string())
        .and_then(|last| received.check(&last.sha256).map(|()| last));
    let last = match checked {
        Ok(last) => last,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    file.sync_all()
        .and_then(|()| std::fs::rename(&partial, out))
        .map_err(|error| format!("cannot write {}: {error}", out.display()))?;
    let summary = serde_json::json!({
        "file": out.display().to_string(),
        "seq": last.seq,
        "bytes": bytes,
        "sha256": last.sha256,
    });
    show(caller, &summary, |_| {
        println!(
            "backup of seq {} written to {} ({} bytes, sha256 {})",
            last.seq,
            out.display(),
            bytes,
            last.sha256
        )
    });
    Ok(())
}

/// A new file readable by its owner only: a backup holds every account's state.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// What has been received of a backup: the SHA-256 of all but its last 32
/// bytes, and those bytes (the hash the file ends with).
#[derive(Default)]
struct Received {
    hasher: Sha256,
    tail: Vec<u8>,
}

impl Received {
    fn take(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > 32 {
            let hashed = self.tail.len() - 32;
            self.hasher.update(&self.tail[..hashed]);
            self.tail.drain(..hashed);
        }
    }

    /// Whether the file ends with the SHA-256 of what precedes it, and the server sent
    /// the same.
    fn check(self, sent: &str) -> Result<(), String> {
        let computed: String = self
            .hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let ending: String = self.tail.iter().map(|byte| format!("{byte:02x}")).collect();
        if computed != ending || computed != sent {
            return Err(format!(
                "the backup received does not match its SHA-256 (computed {computed}, the \
                 server sent {sent}); nothing was kept"
            ));
        }
        Ok(())
    }
}
