//! The two kinds of operating error the core reports: a command the sequencer refuses
//! ([`Reject`]), and a configuration it cannot run with ([`ConfigError`]).
//!
//! A rejected command has changed nothing. Broken invariants are not errors: they are
//! `assert!`s that stop the process before a wrong balance can be written.

use crate::types::{Amount, Asset};

/// Checks a text field: present when `required`, at most `length_max` characters, no
/// control characters. The sequencer checks every command's text with it; a handler
/// checks with it what must be sound before it acts outside the exchange.
pub fn check_text(
    field: &'static str,
    text: &str,
    length_max: usize,
    required: bool,
) -> Result<(), Reject> {
    if required && text.is_empty() {
        return Err(Reject::invalid(field, "is required"));
    }
    // ASCII text, nearly all of it (every order's client order id, twice: the sequencer
    // and the replica), is checked on its bytes: a character each, and the control
    // characters among them are those below a space and DEL.
    let (characters, control) = match text.is_ascii() {
        true => (text.len(), text.bytes().any(|byte| byte.is_ascii_control())),
        false => (text.chars().count(), text.chars().any(char::is_control)),
    };
    if characters > length_max {
        return Err(Reject::TooLong { field, length_max });
    }
    if control {
        return Err(Reject::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Why the sequencer refused a command. Every variant names the field (or the rule) at
/// fault, so the API can turn it into a status whose message a user can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// A field is malformed or out of range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field at fault, as named on the wire.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A text field is longer than its configured limit.
    #[error("{field}: is longer than {length_max} characters")]
    TooLong {
        /// The field, as named on the wire.
        field: &'static str,
        /// The most characters it may have.
        length_max: usize,
    },
    /// A decimal has more places than its unit holds.
    #[error("{field}: has more than {places_max} decimal places")]
    TooPrecise {
        /// The field, as named on the wire.
        field: &'static str,
        /// The most decimal places it may have.
        places_max: u32,
    },
    /// The account lacks the funds the command needs.
    #[error(
        "{field}: insufficient {}: needs {}, {} available",
        asset.symbol(),
        Amount(*needed),
        Amount(*available)
    )]
    InsufficientFunds {
        /// The field whose value needs the funds.
        field: &'static str,
        /// The asset that is short.
        asset: Asset,
        /// Micro-units the command needs.
        needed: u64,
        /// Micro-units available.
        available: u64,
    },
    /// A precondition of the command does not hold (an issue price is not set, an issue
    /// price is above the caller's maximum).
    #[error("{field}: {reason}")]
    FailedPrecondition {
        /// The field whose precondition failed.
        field: &'static str,
        /// What does not hold.
        reason: &'static str,
    },
    /// The account, order or market named does not exist (or is not the caller's).
    #[error("{field}: not found")]
    NotFound {
        /// The field naming what was not found.
        field: &'static str,
    },
    /// The key or id is already in use with other parameters.
    #[error("{field}: already used with other parameters")]
    AlreadyExists {
        /// The key or id field.
        field: &'static str,
    },
    /// The caller's role may not do this.
    #[error("{field}: {reason}")]
    PermissionDenied {
        /// The field or rule at fault.
        field: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// A configured limit would be exceeded.
    #[error("{field}: limit of {limit} reached")]
    LimitExceeded {
        /// The limit's name, as in the configuration.
        field: &'static str,
        /// Its value.
        limit: u64,
    },
}

impl Reject {
    /// Shorthand for [`Reject::InvalidArgument`].
    pub fn invalid(field: &'static str, reason: &'static str) -> Reject {
        Reject::InvalidArgument { field, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortfall_is_told_in_units_of_the_asset() {
        let reject = Reject::InsufficientFunds {
            field: "quantity",
            asset: Asset::Usd,
            needed: 12_500_000,
            available: 3,
        };
        assert_eq!(
            reject.to_string(),
            "quantity: insufficient USD: needs 12.500000, 0.000003 available"
        );
    }

    #[test]
    fn text_is_judged_by_its_characters_whether_ascii_or_not() {
        let check = |text: &str| check_text("memo", text, 4, true);
        assert_eq!(check("abcd"), Ok(()));
        assert_eq!(check("éèàü"), Ok(()), "four characters in eight bytes");
        let too_long = Err(Reject::TooLong {
            field: "memo",
            length_max: 4,
        });
        assert_eq!(check("abcde"), too_long);
        assert_eq!(check("éèàüö"), too_long);
        let control = Err(Reject::invalid("memo", "contains control characters"));
        for text in ["a\tb", "\u{7f}", "\0", "é\n", "a\u{85}"] {
            assert_eq!(check(text), control, "{text:?}");
        }
        assert_eq!(check(""), Err(Reject::invalid("memo", "is required")));
        assert_eq!(check_text("memo", "", 4, false), Ok(()));
    }
}

/// Why a configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A market's specification is inconsistent.
    #[error("market {market}: {reason}")]
    Market {
        /// The market's name.
        market: String,
        /// What is wrong.
        reason: String,
    },
    /// A limit is out of range.
    #[error("limits: {0}")]
    Limit(&'static str),
    /// A setting is outside the range the server can honour.
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The setting, as written in the configuration file.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// Plaintext on an address other hosts can reach.
    #[error(
        "server.listen = {0} is not a loopback address and TLS is not configured: set \
         [server.tls] cert_file and key_file, or server.allow_plaintext = true if a proxy \
         terminates TLS in front of the server"
    )]
    Plaintext(std::net::SocketAddr),
    /// The web gateway on an address other hosts can reach, without a proxy in front.
    #[error(
        "server.http_listen = {0} is not a loopback address: the web gateway speaks plain \
         HTTP, so put it on loopback, or set server.allow_plaintext = true if a proxy \
         terminates TLS in front of it"
    )]
    PlaintextHttp(std::net::SocketAddr),
    /// The configuration file cannot be read or parsed.
    #[error("configuration file: {0}")]
    File(String),
}
