//! Decimal strings on the wire to integers inside, and back.
//!
//! A wire number is plain digits with an optional fraction (`"12"`, `"0.60"`): no sign,
//! no exponent, no spaces, no `NaN`, at most 40 characters. It must fit the unit exactly
//! (an amount within six decimal places; a market's tick and lot are checked on top, in
//! `context.rs`). Nothing is rounded; every refusal names the field.
//!
//! Both directions work on the digits and integer units directly, with checked
//! arithmetic: they run for every field of every order, so neither goes through a
//! general decimal type or `format!`.

use crate::error::Reject;

/// Decimal places of every asset amount on the wire.
pub const AMOUNT_PLACES: u32 = 6;

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
    // Trailing zeros are not places: "1.500000000" is 1.5.
    let fraction = fraction.unwrap_or("").trim_end_matches('0');
    let Some(missing_places) = (places as usize).checked_sub(fraction.len()) else {
        return Err(Reject::TooPrecise {
            field,
            places_max: places,
        });
    };
    let out_of_range = || Reject::invalid(field, "is out of range");
    let mut units: u64 = 0;
    for byte in whole.bytes().chain(fraction.bytes()) {
        units = units
            .checked_mul(10)
            .and_then(|units| units.checked_add(u64::from(byte - b'0')))
            .ok_or_else(out_of_range)?;
    }
    let scale = 10u64
        .checked_pow(missing_places as u32)
        .ok_or_else(out_of_range)?;
    let units = units.checked_mul(scale).ok_or_else(out_of_range)?;
    if units == 0 {
        return Err(Reject::invalid(field, "must be positive"));
    }
    Ok(units)
}

/// Writes `units` of 10^-`places` as a decimal with exactly `places` decimals
/// (`format_units(1_500_000, 6)` is `"1.500000"`).
pub fn format_units(units: u64, places: u32) -> String {
    Digits::of(units, places).as_str().to_owned()
}

/// Decimal places a [`Digits`] writes, at most.
const DIGITS_PLACES_MAX: usize = 24;

/// Bytes of a [`Digits`]: a u64 has at most 20 digits; a point, and a zero before it.
const DIGITS_BYTES: usize = DIGITS_PLACES_MAX + 2;

/// "00", "01", ... "99": the digits of each number below 100, written two at a time.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut number = 0;
    while number < 100 {
        pairs[2 * number] = b'0' + (number / 10) as u8;
        pairs[2 * number + 1] = b'0' + (number % 10) as u8;
        number += 1;
    }
    pairs
};

/// A decimal written from integer units on the stack, for a wire message to copy: what
/// [`format_units`] returns, without a `String` to allocate and free.
pub struct Digits {
    /// The text, right-aligned.
    bytes: [u8; DIGITS_BYTES],
    start: usize,
}

impl Digits {
    /// `units` of 10^-`places`, with exactly `places` decimals and at least one digit
    /// before the point.
    pub fn of(units: u64, places: u32) -> Digits {
        let places = places as usize;
        assert!(
            places <= DIGITS_PLACES_MAX,
            "a decimal has at most 24 places"
        );
        // The digits of `units`, right-aligned, two at a time; zeros before them.
        let mut bytes = [b'0'; DIGITS_BYTES];
        let mut at = DIGITS_BYTES;
        let mut rest = units;
        while rest >= 10 {
            let pair = 2 * (rest % 100) as usize;
            at -= 2;
            bytes[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
            rest /= 100;
        }
        if rest > 0 || at == DIGITS_BYTES {
            at -= 1;
            bytes[at] = b'0' + rest as u8;
        }
        // At least one digit before the point, which goes before the last `places`: the
        // whole part moves one to the left to make room for it.
        let start = at.min(DIGITS_BYTES - places - 1);
        if places == 0 {
            return Digits { bytes, start };
        }
        let point = DIGITS_BYTES - places;
        bytes.copy_within(start..point, start - 1);
        bytes[point - 1] = b'.';
        Digits {
            bytes,
            start: start - 1,
        }
    }

    /// The decimal's text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// The decimal's text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("a decimal is ASCII digits and a point")
    }
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
        assert_eq!(reject.to_string(), "price: has more than 4 decimal places");
        let reject = parse_units("price", "0.0000", 4).expect_err("zero");
        assert_eq!(reject.to_string(), "price: must be positive");
    }

    #[test]
    fn formatting_and_parsing_agree_on_every_scale() {
        for places in [0, 2, 4, 6, 12] {
            for units in [
                1,
                9,
                10,
                99,
                100,
                123_456,
                1_000_000,
                987_654_321_012,
                u64::MAX,
            ] {
                let text = format_units(units, places);
                assert_eq!(parse_units("value", &text, places), Ok(units), "{text}");
            }
        }
        assert_eq!(format_units(u64::MAX, 6), "18446744073709.551615");
        assert_eq!(format_units(5, 12), "0.000000000005");
    }

    #[test]
    fn formatting_writes_every_place() {
        assert_eq!(format_units(1_500_000, 6), "1.500000");
        assert_eq!(format_units(6_001, 4), "0.6001");
        assert_eq!(format_units(7, 0), "7");
        assert_eq!(format_units(0, 2), "0.00");
    }
}
