//! Funding sources: where deposited dollars come from. The real processors are outside
//! this system; each kind has a [`FundingSource`] implementation, and the ones shipped are
//! sandbox processors that check a reference the way the real one would and decline
//! documented test references, so the whole deposit flow runs end to end. A real processor
//! drops in behind the same trait.

use std::sync::Arc;

use crate::error::Reject;
use crate::types::FundingSourceKind;

/// A processor that accepts or refuses a deposit before the exchange credits it.
pub trait FundingSource: Send + Sync {
    /// Accepts `amount_micros` of USD from `reference`, or says why not: a malformed
    /// reference is `InvalidArgument`, a declined one `FailedPrecondition`. The deposit's
    /// idempotency key goes to the processor, so that a real one charges a retried
    /// deposit once even if the exchange asks twice (the exchange asks only for keys it
    /// has not applied).
    fn authorize(
        &self,
        reference: &str,
        amount_micros: u64,
        idempotency_key: &str,
    ) -> Result<(), Reject>;

    /// What the exchange keeps of an authorized reference: in the journal, snapshots,
    /// history and logs. A card number is never kept, only its last four digits.
    fn stored_reference(&self, reference: &str) -> String {
        reference.to_string()
    }
}

/// Card payments, sandbox: a Luhn-valid number is accepted, except 4000000000000002.
pub struct SandboxCard;

/// PayPal, sandbox: an e-mail address is accepted, except declined@example.com.
pub struct SandboxPaypal;

/// e-gold, sandbox: an account number of 6 to 12 digits is accepted, except 999999.
pub struct SandboxEgold;

/// Digits in a card number (ISO/IEC 7812 allows 8 to 19; issued cards have 12 or more).
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 12..=19;

/// The longest e-mail address a mail path can carry (RFC 5321).
const EMAIL_LENGTH_MAX: usize = 254;

/// Digits in an e-gold account number.
const EGOLD_ACCOUNT_DIGITS: std::ops::RangeInclusive<usize> = 6..=12;

impl FundingSource for SandboxCard {
    fn authorize(
        &self,
        reference: &str,
        _amount_micros: u64,
        _idempotency_key: &str,
    ) -> Result<(), Reject> {
        let digits = CARD_DIGITS.contains(&reference.len())
            && reference.bytes().all(|byte| byte.is_ascii_digit());
        if !digits || !luhn(reference) {
            return Err(Reject::invalid(
                "source_reference",
                "is not a valid card number (12 to 19 digits passing the Luhn check)",
            ));
        }
        if reference == "4000000000000002" {
            return Err(Reject::FailedPrecondition {
                field: "source_reference",
                reason: "card declined",
            });
        }
        Ok(())
    }

    fn stored_reference(&self, reference: &str) -> String {
        let last_four = reference
            .get(reference.len().saturating_sub(4)..)
            .unwrap_or_default();
        format!("card ending {last_four}")
    }
}

impl FundingSource for SandboxPaypal {
    fn authorize(
        &self,
        reference: &str,
        _amount_micros: u64,
        _idempotency_key: &str,
    ) -> Result<(), Reject> {
        let valid = match reference.split_once('@') {
            Some((user, domain)) => {
                !user.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !reference.chars().any(char::is_whitespace)
                    && !domain.contains('@')
            }
            None => false,
        };
        if !valid || reference.len() > EMAIL_LENGTH_MAX {
            return Err(Reject::invalid(
                "source_reference",
                "is not an e-mail address",
            ));
        }
        if reference.eq_ignore_ascii_case("declined@example.com") {
            return Err(Reject::FailedPrecondition {
                field: "source_reference",
                reason: "PayPal payment declined",
            });
        }
        Ok(())
    }
}

impl FundingSource for SandboxEgold {
    fn authorize(
        &self,
        reference: &str,
        _amount_micros: u64,
        _idempotency_key: &str,
    ) -> Result<(), Reject> {
        if !EGOLD_ACCOUNT_DIGITS.contains(&reference.len())
            || !reference.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(Reject::invalid(
                "source_reference",
                "is not an e-gold account number (6 to 12 digits)",
            ));
        }
        if reference == "999999" {
            return Err(Reject::FailedPrecondition {
                field: "source_reference",
                reason: "e-gold payment declined",
            });
        }
        Ok(())
    }
}

/// The Luhn check digit test.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// One processor per kind of funding source.
pub struct FundingSources {
    card: Arc<dyn FundingSource>,
    paypal: Arc<dyn FundingSource>,
    egold: Arc<dyn FundingSource>,
}

/// No processor: every deposit of that kind is refused.
struct Disabled(&'static str);

impl FundingSource for Disabled {
    fn authorize(&self, _: &str, _: u64, _: &str) -> Result<(), Reject> {
        Err(Reject::FailedPrecondition {
            field: "source",
            reason: self.0,
        })
    }
}

impl FundingSources {
    /// Processors for cards, PayPal and e-gold.
    pub fn new(
        card: Box<dyn FundingSource>,
        paypal: Box<dyn FundingSource>,
        egold: Box<dyn FundingSource>,
    ) -> FundingSources {
        FundingSources {
            card: Arc::from(card),
            paypal: Arc::from(paypal),
            egold: Arc::from(egold),
        }
    }

    /// No processors: every deposit is refused (`server.funding_sandbox = false` until a
    /// real processor is built in).
    pub fn disabled() -> FundingSources {
        FundingSources::new(
            Box::new(Disabled("no card processor is configured")),
            Box::new(Disabled("no PayPal processor is configured")),
            Box::new(Disabled("no e-gold processor is configured")),
        )
    }

    /// The sandbox processors.
    pub fn sandbox() -> FundingSources {
        FundingSources {
            card: Arc::new(SandboxCard),
            paypal: Arc::new(SandboxPaypal),
            egold: Arc::new(SandboxEgold),
        }
    }

    /// The processor for a kind of source, shared with the blocking thread that asks it.
    pub fn of(&self, kind: FundingSourceKind) -> Arc<dyn FundingSource> {
        Arc::clone(match kind {
            FundingSourceKind::Card => &self.card,
            FundingSourceKind::Paypal => &self.paypal,
            FundingSourceKind::Egold => &self.egold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_pass_the_luhn_check_and_the_test_card_is_declined() {
        assert_eq!(SandboxCard.authorize("4111111111111111", 1, "key"), Ok(()));
        let invalid = SandboxCard
            .authorize("4111111111111112", 1, "key")
            .expect_err("bad check digit");
        assert!(matches!(
            invalid,
            Reject::InvalidArgument {
                field: "source_reference",
                ..
            }
        ));
        assert!(SandboxCard
            .authorize("4111 1111 1111 1111", 1, "key")
            .is_err());
        let declined = SandboxCard
            .authorize("4000000000000002", 1, "key")
            .expect_err("declined");
        assert_eq!(declined.to_string(), "source_reference: card declined");
    }

    #[test]
    fn paypal_takes_addresses_and_declines_the_test_one() {
        assert_eq!(
            SandboxPaypal.authorize("someone@example.com", 1, "key"),
            Ok(())
        );
        assert!(matches!(
            SandboxPaypal.authorize("someone", 1, "key"),
            Err(Reject::InvalidArgument { .. })
        ));
        assert!(matches!(
            SandboxPaypal.authorize("declined@example.com", 1, "key"),
            Err(Reject::FailedPrecondition { .. })
        ));
    }

    #[test]
    fn egold_takes_six_to_twelve_digits_and_declines_999999() {
        assert_eq!(SandboxEgold.authorize("123456", 1, "key"), Ok(()));
        assert_eq!(SandboxEgold.authorize("123456789012", 1, "key"), Ok(()));
        assert!(SandboxEgold.authorize("12345", 1, "key").is_err());
        assert!(SandboxEgold.authorize("1234567890123", 1, "key").is_err());
        assert!(SandboxEgold.authorize("12345a", 1, "key").is_err());
        assert!(matches!(
            SandboxEgold.authorize("999999", 1, "key"),
            Err(Reject::FailedPrecondition { .. })
        ));
    }
}
