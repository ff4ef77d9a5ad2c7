//! Bearer tokens: generated at random (256 bits), handed out once, and kept only as their
//! SHA-256. Every call but market data and health carries `authorization: Bearer <token>`.
//!
//! An account's token is found by looking its hash up: the lookup's timing can only reveal
//! something of a hash of 256 random bits, which is of no use for guessing a token. The
//! issuer's token is compared in constant time.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use super::status;
use crate::ledger::{Account, REVOKED_TOKEN_HASH, TREASURY};
use crate::types::{AccountId, Role};

/// Who is calling, once authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's account (the treasury for the issuer).
    pub account: AccountId,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// The caller, if it has `role`; otherwise the status to answer with.
    pub fn require(self, role: Role) -> Result<Caller, Status> {
        if self.role != role {
            return Err(status::role_required(match role {
                Role::Issuer => "issuer",
                Role::Trader => "trader",
                Role::Service => "service",
            }));
        }
        Ok(self)
    }
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Characters in a bearer token a request may present, at most; a longer one is refused
/// before it is hashed.
const TOKEN_LENGTH_MAX: usize = 256;

/// A new random token: `dvm_` and 64 hex digits (256 bits from the operating system).
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("dvm_{hex}"))
}

/// The token hashes of every account, and the issuer's.
pub struct Tokens {
    accounts: RwLock<AccountTokens>,
    issuer_hash: [u8; 32],
}

/// Callers by token hash, and each account's current hash with the sequence number that
/// set it, so that a rotation removes the old one without a scan and two rotations
/// answered out of order leave the later one.
#[derive(Default)]
struct AccountTokens {
    callers: HashMap<[u8; 32], Caller>,
    hashes: HashMap<AccountId, ([u8; 32], u64)>,
}

impl Tokens {
    /// Tokens for the issuer and the given accounts (as recovered from the ledger).
    pub fn new(issuer_token: &str, accounts: &[Account]) -> Tokens {
        let mut tokens = AccountTokens::default();
        for account in accounts
            .iter()
            .filter(|account| account.role != Role::Issuer)
        {
            let caller = Caller {
                account: account.id,
                role: account.role,
            };
            tokens.set(caller, Some(account.token_hash), 0);
        }
        Tokens {
            accounts: RwLock::new(tokens),
            issuer_hash: hash_token(issuer_token),
        }
    }

    /// Accepts a new account's token.
    pub fn register(&self, token_hash: [u8; 32], caller: Caller) {
        self.set(caller, Some(token_hash), 0);
    }

    /// Replaces an account's token (`None`: revokes it) as committed at `seq`; the old
    /// one stops working. A change older than the one in place is ignored.
    pub fn set(&self, caller: Caller, token_hash: Option<[u8; 32]>, seq: u64) {
        if let Ok(mut accounts) = self.accounts.write() {
            accounts.set(caller, token_hash, seq);
        }
    }

    /// The caller of a request, from its bearer token.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| status::unauthenticated("a bearer token is required"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty() && token.len() <= TOKEN_LENGTH_MAX)
            .ok_or_else(|| status::unauthenticated("expected `Bearer <token>`"))?;
        let hash = hash_token(token);
        if bool::from(hash.ct_eq(&self.issuer_hash)) {
            return Ok(Caller {
                account: TREASURY,
                role: Role::Issuer,
            });
        }
        let accounts = self
            .accounts
            .read()
            .map_err(|_| status::internal("the token table is unavailable"))?;
        accounts
            .callers
            .get(&hash)
            .copied()
            .ok_or_else(|| status::unauthenticated("unknown token"))
    }
}

impl AccountTokens {
    fn set(&mut self, caller: Caller, token_hash: Option<[u8; 32]>, seq: u64) {
        if let Some((old, set_at)) = self.hashes.get(&caller.account).copied() {
            if set_at > seq {
                return;
            }
            self.callers.remove(&old);
        }
        let token_hash = token_hash.unwrap_or(REVOKED_TOKEN_HASH);
        self.hashes.insert(caller.account, (token_hash, seq));
        if token_hash != REVOKED_TOKEN_HASH {
            self.callers.insert(token_hash, caller);
        }
    }
}

/// How long a peer's failed authentications are counted together.
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Peers whose failures are tracked at once, at most: when more fail within a window the
/// table starts afresh, so its memory is bounded whatever the number of addresses.
const FAILING_PEERS_MAX: usize = 65_536;

/// Failed authentications per peer address, so that a peer guessing tokens is refused
/// for the rest of the minute once it has failed `limit` times in it.
pub struct AuthFailures {
    limit: u32,
    peers: std::sync::Mutex<HashMap<std::net::IpAddr, (std::time::Instant, u32)>>,
}

impl AuthFailures {
    /// Allows each peer `limit` failures a minute.
    pub fn new(limit: u32) -> AuthFailures {
        AuthFailures {
            limit,
            peers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Refuses a peer that has reached its limit in the current window, whatever token it
    /// now presents: `RESOURCE_EXHAUSTED`, saying when to retry.
    pub fn check(&self, peer: Option<std::net::IpAddr>) -> Result<(), Status> {
        let (Some(peer), Ok(peers)) = (peer, self.peers.lock()) else {
            return Ok(());
        };
        match peers.get(&peer) {
            Some((started, failures))
                if *failures >= self.limit && started.elapsed() < FAILURE_WINDOW =>
            {
                let wait = FAILURE_WINDOW.saturating_sub(started.elapsed()).as_secs() + 1;
                Err(status::limit_reached(
                    "auth_failures_per_minute_max",
                    format!(
                        "{} failed authentications from this address; retry in {wait} s",
                        self.limit
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `peer`.
    pub fn record(&self, peer: Option<std::net::IpAddr>) {
        let (Some(peer), Ok(mut peers)) = (peer, self.peers.lock()) else {
            return;
        };
        if peers.len() >= FAILING_PEERS_MAX && !peers.contains_key(&peer) {
            peers.retain(|_, (started, _)| started.elapsed() < FAILURE_WINDOW);
            if peers.len() >= FAILING_PEERS_MAX {
                peers.clear();
            }
        }
        let now = std::time::Instant::now();
        let entry = peers.entry(peer).or_insert((now, 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// Where the issuer's token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerTokenSource {
    /// The configuration file.
    Configuration,
    /// The `DIVMID_ISSUER_TOKEN` environment variable.
    Environment,
    /// The token file in the data directory, written at an earlier start.
    File(PathBuf),
    /// Generated now and written to the token file.
    Generated(PathBuf),
}

/// The fewest characters an issuer token may have, from any source.
pub const ISSUER_TOKEN_LENGTH_MIN: usize = 32;

/// Why the issuer's token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error(
        "the issuer token from {0} has {1} characters; at least {ISSUER_TOKEN_LENGTH_MIN} \
         are required"
    )]
    TooShort(&'static str, usize),
    /// The token file could be read or changed by someone else.
    #[error(
        "{path} must be owned by the server's user and readable by it alone (chmod 600 \
         {path}): {why}"
    )]
    Exposed {
        /// The token file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed.
    #[error("issuer token: {0}")]
    Io(#[from] std::io::Error),
}

/// The issuer's token: from the configuration, else from `environment` (the value of
/// `DIVMID_ISSUER_TOKEN`), else from `<data_dir>/issuer-token`, which the first start
/// creates, readable only by its owner. A token shorter than
/// [`ISSUER_TOKEN_LENGTH_MIN`], or a token file that others can read or that another user
/// owns, is refused.
pub fn issuer_token(
    configured: Option<&str>,
    environment: Option<String>,
    data_dir: &Path,
) -> Result<(String, IssuerTokenSource), TokenError> {
    let (token, source) = find_issuer_token(configured, environment, data_dir)?;
    let named = match source {
        IssuerTokenSource::Configuration => "the configuration",
        IssuerTokenSource::Environment => "DIVMID_ISSUER_TOKEN",
        IssuerTokenSource::File(_) | IssuerTokenSource::Generated(_) => "the token file",
    };
    if token.chars().count() < ISSUER_TOKEN_LENGTH_MIN {
        return Err(TokenError::TooShort(named, token.chars().count()));
    }
    Ok((token, source))
}

fn find_issuer_token(
    configured: Option<&str>,
    environment: Option<String>,
    data_dir: &Path,
) -> Result<(String, IssuerTokenSource), TokenError> {
    if let Some(token) = configured {
        return Ok((token.to_string(), IssuerTokenSource::Configuration));
    }
    if let Some(token) = environment.filter(|token| !token.trim().is_empty()) {
        return Ok((token.trim().to_string(), IssuerTokenSource::Environment));
    }
    let path = data_dir.join("issuer-token");
    if path.exists() {
        check_private(&path)?;
        let token = std::fs::read_to_string(&path)?.trim().to_string();
        return Ok((token, IssuerTokenSource::File(path)));
    }
    crate::store::create_private_directory(data_dir)?;
    let token = generate_token().map_err(std::io::Error::other)?;
    // Written whole under a temporary name, then renamed: a full disk or a crash cannot
    // leave a partial token behind.
    let partial = data_dir.join("issuer-token.partial");
    let _ = std::fs::remove_file(&partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&partial)?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    std::fs::rename(&partial, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok((token, IssuerTokenSource::Generated(path)))
}

/// Refuses a token file that another user owns or that anyone but its owner may read or
/// change.
fn check_private(path: &Path) -> Result<(), TokenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)?;
        let exposed = |why: String| TokenError::Exposed {
            path: path.display().to_string(),
            why,
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = unsafe { libc::geteuid() };
        if metadata.uid() != user {
            return Err(exposed(format!(
                "it is owned by uid {}, the server runs as uid {user}",
                metadata.uid()
            )));
        }
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(exposed(format!("its mode is {mode:o}")));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_random_and_distinct() {
        let first = generate_token().expect("random");
        let second = generate_token().expect("random");
        assert_eq!(first.len(), 4 + 64);
        assert_ne!(first, second);
    }

    #[test]
    fn the_first_start_writes_an_owner_only_token_file_that_later_starts_read() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let (token, source) = issuer_token(None, None, directory.path()).expect("generated");
        let path = directory.path().join("issuer-token");
        assert_eq!(source, IssuerTokenSource::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, source) = issuer_token(None, None, directory.path()).expect("read");
        assert_eq!((again, source), (token, IssuerTokenSource::File(path)));
        let long = "from-the-environment-0123456789-abcdef";
        let (from_env, source) =
            issuer_token(None, Some(long.into()), directory.path()).expect("env");
        assert_eq!(
            (from_env.as_str(), source),
            (long, IssuerTokenSource::Environment)
        );
        let configured_token = "configured-token-0123456789-abcdef";
        let (configured, _) =
            issuer_token(Some(configured_token), None, directory.path()).expect("config");
        assert_eq!(configured, configured_token);
    }

    #[test]
    fn short_tokens_and_exposed_token_files_are_refused() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let short = issuer_token(Some("short-configured-token"), None, directory.path());
        let error = short.expect_err("too short").to_string();
        assert!(
            error.contains("the configuration has 22 characters"),
            "{error}"
        );
        let short = issuer_token(None, Some("short".into()), directory.path());
        assert!(short
            .expect_err("too short")
            .to_string()
            .contains("DIVMID_ISSUER_TOKEN"));
        let path = directory.path().join("issuer-token");
        std::fs::write(&path, "a-token-of-the-right-length-0123456789\n").expect("written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let error = issuer_token(None, None, directory.path()).expect_err("exposed");
            assert!(error.to_string().contains("chmod 600"), "{error}");
            assert!(error.to_string().contains("mode is 644"), "{error}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        assert!(issuer_token(None, None, directory.path()).is_ok());
    }

    #[test]
    fn requests_authenticate_by_bearer_token() {
        let tokens = Tokens::new("issuer-secret-token", &[]);
        let trader = Caller {
            account: AccountId(5),
            role: Role::Trader,
        };
        tokens.register(hash_token("trader-token"), trader);
        let request = |value: Option<&str>| {
            let mut request = Request::new(());
            if let Some(value) = value {
                request
                    .metadata_mut()
                    .insert("authorization", value.parse().expect("ascii"));
            }
            request
        };
        assert_eq!(
            tokens
                .authenticate(&request(Some("Bearer trader-token")))
                .ok(),
            Some(trader)
        );
        let issuer = tokens
            .authenticate(&request(Some("Bearer issuer-secret-token")))
            .expect("issuer");
        assert_eq!(issuer.role, Role::Issuer);
        for bad in [
            None,
            Some("trader-token"),
            Some("Bearer "),
            Some("Bearer wrong"),
        ] {
            let status = tokens.authenticate(&request(bad)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
        assert_eq!(
            trader.require(Role::Issuer).expect_err("wrong role").code(),
            tonic::Code::PermissionDenied
        );
    }
}
