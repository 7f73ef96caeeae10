#![no_main]

use adapters::formats::number::{parse_amount, parse_implied};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&exponent, rest)) = data.split_first() else {
        return;
    };
    let exponent = u32::from(exponent % 5);
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = parse_amount(text, exponent);
        let _ = parse_implied(text, exponent, 2);
    }
    // Round trip: a value written plainly, or grouped with spaces and a decimal comma, reads
    // back as itself.
    if rest.len() >= 8 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&rest[..8]);
        let value = i64::from_le_bytes(raw);
        if value == i64::MIN {
            return;
        }
        let scale = 10i64.pow(exponent);
        let (int, frac) = (value.abs() / scale, value.abs() % scale);
        let sign = if value < 0 { "-" } else { "" };
        let width = exponent as usize;
        let plain = if exponent == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac:0width$}")
        };
        assert_eq!(parse_amount(&plain, exponent), Ok(value), "{plain}");
        let digits = int.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        let spaced = if exponent == 0 {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped},{frac:0width$}")
        };
        assert_eq!(parse_amount(&spaced, exponent), Ok(value), "{spaced}");
    }
});
