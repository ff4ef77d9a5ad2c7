//! Decimal strings on the wire to integers inside, and back.
//!
//! A wire number is plain digits with an optional fraction (`"12"`, `"0.60"`): no sign,
//! no exponent, no spaces, no `NaN`, at most 40 characters. It is parsed with
//! rust_decimal, and must then fit the unit exactly (an amount within six decimal places;
//! a market's tick and lot are checked on top, in `context.rs`). Nothing is rounded; every
//! refusal names the field.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error::Reject;

/// The longest number accepted, in characters.
const LENGTH_MAX: usize = 40;

/// Parses `text` as a positive decimal and returns it as a whole number of `unit`s, where
/// one unit is 10^-`places` (e.g. micro-units with `places` 6).
pub fn parse_units(field: &'static str, text: &str, places: u32) -> Result<u64, Reject> {
    if text.is_empty() {
        return Err(Reject::invalid(field, "is required"));
    }
    if text.len() > LENGTH_MAX {
        return Err(Reject::TooLong {
            field,
            length_max: LENGTH_MAX,
        });
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(whole) || !fraction.is_none_or(digits) {
        return Err(Reject::invalid(
            field,
            "must be a plain decimal number such as 12.5 (no sign, exponent or spaces)",
        ));
    }
    let value = Decimal::from_str(text).map_err(|_| Reject::invalid(field, "is out of range"))?;
    let scaled = value
        .checked_mul(Decimal::from(10u64.pow(places)))
        .ok_or(Reject::invalid(field, "is out of range"))?
        .normalize();
    if !scaled.fract().is_zero() {
        return Err(Reject::invalid(
            field,
            "has more decimal places than allowed",
        ));
    }
    let units: u64 = scaled
        .trunc()
        .to_string()
        .parse()
        .map_err(|_| Reject::invalid(field, "is out of range"))?;
    if units == 0 {
        return Err(Reject::invalid(field, "must be positive"));
    }
    Ok(units)
}

/// Writes `units` of 10^-`places` as a decimal with exactly `places` decimals
/// (`format_units(1_500_000, 6)` is `"1.500000"`).
pub fn format_units(units: u64, places: u32) -> String {
    if places == 0 {
        return units.to_string();
    }
    let scale = 10u64.pow(places);
    format!(
        "{}.{:0width$}",
        units / scale,
        units % scale,
        width = places as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro(text: &str) -> Result<u64, Reject> {
        parse_units("amount", text, 6)
    }

    #[test]
    fn plain_decimals_parse_exactly() {
        assert_eq!(micro("12"), Ok(12_000_000));
        assert_eq!(micro("0.60"), Ok(600_000));
        assert_eq!(micro("12.5"), Ok(12_500_000));
        assert_eq!(micro("0.000001"), Ok(1));
        assert_eq!(
            micro("1.500000000"),
            Ok(1_500_000),
            "trailing zeros are not places"
        );
        assert_eq!(micro("007"), Ok(7_000_000));
    }

    #[test]
    fn the_catalogue_of_bad_numbers_is_refused_naming_the_field() {
        let cases = [
            "abc",
            "-1",
            "0",
            "1e3",
            "NaN",
            "",
            " 1",
            "1 ",
            "+1",
            "1.",
            ".5",
            "1,5",
            "0.0000001",
            "1..2",
            "0x10",
            "١",
            "inf",
        ];
        for text in cases {
            let reject = micro(text).expect_err(text);
            assert!(
                reject.to_string().starts_with("amount: "),
                "{text:?} gave {reject}"
            );
        }
        let forty_digits = "1".repeat(40);
        assert!(micro(&forty_digits).is_err(), "40 digits overflow");
        assert!(
            micro(&"1".repeat(41)).is_err(),
            "41 characters are too long"
        );
        assert!(
            micro("18446744073709.551616").is_err(),
            "just past u64 is out of range"
        );
    }

    #[test]
    fn places_are_enforced() {
        // An issue price in units of 0.0001: 4 places.
        assert_eq!(parse_units("price", "0.6001", 4), Ok(6_001));
        let reject = parse_units("price", "0.60001", 4).expect_err("a fifth place");
        assert_eq!(
            reject.to_string(),
            "price: has more decimal places than allowed"
        );
        let reject = parse_units("price", "0.0000", 4).expect_err("zero");
        assert_eq!(reject.to_string(), "price: must be positive");
    }

    #[test]
    fn formatting_writes_every_place() {
        assert_eq!(format_units(1_500_000, 6), "1.500000");
        assert_eq!(format_units(6_001, 4), "0.6001");
        assert_eq!(format_units(7, 0), "7");
        assert_eq!(format_units(0, 2), "0.00");
    }
}
