//! Check digits of the identifiers the masking layer recognises in a run of digits. Each
//! function takes the digits (0–9 values, separators already removed).

/// Taxpayer number (INN): 10 digits (organisation) or 12 digits (person), official check
/// digits, not all zeros.
pub fn inn(d: &[u8]) -> bool {
    const W10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
    const W11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    const W12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    if d.iter().all(|&x| x == 0) {
        return false;
    }
    match d.len() {
        10 => check(&d[..9], &W10) == u32::from(d[9]),
        12 => {
            check(&d[..10], &W11) == u32::from(d[10]) && check(&d[..11], &W12) == u32::from(d[11])
        }
        _ => false,
    }
}

fn check(d: &[u8], weights: &[u32]) -> u32 {
    d.iter()
        .zip(weights)
        .map(|(&x, &w)| u32::from(x) * w)
        .sum::<u32>()
        % 11
        % 10
}

/// Pension insurance number (SNILS): 11 digits; the check number (last two) is the weighted
/// sum of the first nine (weights 9..1) mod 101, 100 → 00. Numbers up to 001-001-998 carry
/// no check number and are not recognised (they are also rare in practice).
pub fn snils(d: &[u8]) -> bool {
    if d.len() != 11 {
        return false;
    }
    let body = &d[..9];
    let number = body.iter().fold(0u64, |n, &x| n * 10 + u64::from(x));
    if number <= 1_001_998 {
        return false;
    }
    let sum: u32 = body
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * (9 - i as u32))
        .sum();
    let expected = match sum % 101 {
        100 => 0,
        s => s,
    };
    expected == u32::from(d[9]) * 10 + u32::from(d[10])
}

/// Payment card number: 13–19 digits passing the Luhn check, not all zeros.
pub fn pan(d: &[u8]) -> bool {
    if !(13..=19).contains(&d.len()) || d.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect()
    }

    #[test]
    fn checksums_agree_with_the_mapping_validators() {
        for s in ["7707083893", "500100732259", "7830002293"] {
            assert!(inn(&d(s)), "{s}");
            assert!(mapping::validate::inn(s).is_ok(), "{s}");
        }
        assert!(!inn(&d("7707083894")));
        assert!(!inn(&d("0000000000")));
        for s in ["112-233-445 95", "123-456-789 64"] {
            assert!(snils(&d(s)), "{s}");
            assert!(mapping::validate::snils(s).is_ok(), "{s}");
        }
        assert!(!snils(&d("112-233-445 96")));
        assert!(pan(&d("4111 1111 1111 1111")));
        assert!(pan(&d("5500-0000-0000-0004")));
        assert!(!pan(&d("4111 1111 1111 1112")));
        assert!(!pan(&d("411111111111")));
    }
}
