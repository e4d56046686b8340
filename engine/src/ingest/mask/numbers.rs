//! Value detectors for numeric PII, called by `Masker::mask_str`: payment card numbers
//! (Luhn and the IIN ranges and lengths of every network), IBANs (country length and the
//! ISO 13616 mod-97 check) and US social security numbers written `123-45-6789`.
//!
//! Trade-off on cards: a Luhn-valid number is only a card if its IIN and length belong to one
//! network, so 15-digit IMEIs (`35...`, `49...`), order ids and epoch-ms timestamps (`1...`)
//! stay readable; 12-digit Maestro numbers count only when written in groups, because bare
//! 12-digit numbers are mostly AWS account ids. A Luhn-valid id that happens to fall in a
//! card range (about one in ten numbers of that shape) is masked: a false positive costs
//! readability, a false negative leaks a card.

use super::{Hit, boundary_before, run_end};

/// Card numbers: digit groups standing alone (no letter or digit glued on), joined by one
/// and the same separator (space, dash or dot), 12-19 digits in all, with a valid IIN and
/// length and a valid Luhn sum.
pub(super) fn find_cards(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut chain: Vec<(usize, usize)> = Vec::new();
    let mut sep: Option<u8> = None;
    // Whether the chain has a group shorter than three digits (which a dot may not join).
    let mut short_group = false;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let end = run_end(b, i, |c| c.is_ascii_digit());
        let alone = boundary_before(b, i) && (end == b.len() || !b[end].is_ascii_alphanumeric());
        if alone && end - i <= 19 {
            let gap = chain.last().filter(|&&(_, e)| e + 1 == i).map(|&(_, e)| b[e]);
            let joined = match gap {
                Some(c @ (b' ' | b'-')) => sep.is_none_or(|s| s == c),
                // Dotted groups are at least three digits (`4111.1111.1111.1111`), so a
                // decimal point or a version number does not join.
                Some(b'.') => sep.is_none_or(|s| s == b'.') && end - i >= 3 && !short_group,
                _ => false,
            };
            if joined {
                sep = gap;
            } else {
                card_chain(b, &chain, hits);
                chain.clear();
                sep = None;
                short_group = false;
            }
            chain.push((i, end));
            short_group |= end - i < 3;
        } else {
            card_chain(b, &chain, hits);
            chain.clear();
            sep = None;
            short_group = false;
        }
        i = end;
    }
    card_chain(b, &chain, hits);
}

/// Finds cards among consecutive groups of a chain, longest match from each start.
fn card_chain(b: &[u8], chain: &[(usize, usize)], hits: &mut Vec<Hit>) {
    let mut a = 0;
    while a < chain.len() {
        let mut digits = Vec::with_capacity(19);
        let mut best = None;
        for (k, &(gs, ge)) in chain[a..].iter().enumerate() {
            digits.extend_from_slice(&b[gs..ge]);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 12 && is_card(&digits, k > 0) {
                best = Some((a + k, digits.iter().map(|&c| char::from(c)).collect::<String>()));
            }
        }
        match best {
            Some((last, canon)) => {
                hits.push(Hit { start: chain[a].0, end: chain[last].1, kind: "card", canon: Some(canon) });
                a = last + 1;
            }
            None => a += 1,
        }
    }
}

/// `d`: 12-19 ASCII digits; `grouped`: written in more than one group.
pub(super) fn is_card(d: &[u8], grouped: bool) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
    let len = d.len();
    let maestro = (13..=19).contains(&len) || (len == 12 && grouped);
    let network = match d[0] {
        // Visa (and Visa Electron).
        b'4' => matches!(len, 13 | 16 | 19),
        // Mir 2200-2204; Mastercard 2221-2720.
        b'2' => {
            ((2200..=2204).contains(&n(4)) && (16..=19).contains(&len)) || ((2221..=2720).contains(&n(4)) && len == 16)
        }
        b'3' => match n(2) {
            // American Express.
            34 | 37 => len == 15,
            // JCB.
            35 => (3528..=3589).contains(&n(4)) && (16..=19).contains(&len),
            // Diners Club.
            30 | 36 | 38 | 39 => (14..=19).contains(&len),
            _ => false,
        },
        b'5' => match n(2) {
            // Mastercard.
            51..=55 => len == 16,
            // Maestro.
            50 | 56..=59 => maestro,
            _ => false,
        },
        // Discover (6011, 644-649, 65), UnionPay (62), RuPay (60, 65): 16-19 digits; the
        // whole 6 range is also Maestro.
        b'6' => (16..=19).contains(&len) || maestro,
        // UnionPay and RuPay in the 8 range.
        b'8' => matches!(n(2), 81 | 82) && (16..=19).contains(&len),
        // Troy.
        b'9' => n(4) == 9792 && len == 16,
        _ => false,
    };
    network && luhn(d)
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let x = u32::from(c - b'0') * if i % 2 == 1 { 2 } else { 1 };
            if x > 9 { x - 9 } else { x }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// IBAN lengths by country (ISO 13616 registry).
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16),
    (b"BG", 22), (b"BH", 22), (b"BR", 29), (b"BY", 28), (b"CH", 21), (b"CR", 22), (b"CY", 28),
    (b"CZ", 24), (b"DE", 22), (b"DK", 18), (b"DO", 28), (b"EE", 20), (b"EG", 29), (b"ES", 24),
    (b"FI", 18), (b"FO", 18), (b"FR", 27), (b"GB", 22), (b"GE", 22), (b"GI", 23), (b"GL", 18),
    (b"GR", 27), (b"GT", 28), (b"HR", 21), (b"HU", 28), (b"IE", 22), (b"IL", 23), (b"IQ", 23),
    (b"IS", 26), (b"IT", 27), (b"JO", 30), (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LC", 32),
    (b"LI", 21), (b"LT", 20), (b"LU", 20), (b"LV", 21), (b"MC", 27), (b"MD", 24), (b"ME", 22),
    (b"MK", 19), (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NL", 18), (b"NO", 15), (b"PK", 24),
    (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"SA", 24),
    (b"SC", 31), (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"SM", 27), (b"ST", 25), (b"SV", 28),
    (b"TL", 23), (b"TN", 24), (b"TR", 26), (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20),
];

/// IBANs, compact or in groups of four separated by single spaces.
pub(super) fn find_ibans(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 4 <= b.len() {
        let start = i;
        i += 1;
        let head = &b[start..start + 4];
        if !(head[0].is_ascii_uppercase()
            && head[1].is_ascii_uppercase()
            && head[2].is_ascii_digit()
            && head[3].is_ascii_digit()
            && boundary_before(b, start))
        {
            continue;
        }
        let Some(&(_, want)) = IBAN_LENGTHS.iter().find(|(c, _)| c[..] == head[..2]) else { continue };
        let mut chars = Vec::with_capacity(want);
        let mut j = start;
        while j < b.len() && chars.len() < want {
            let c = b[j];
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                chars.push(c);
                j += 1;
            } else if c == b' ' && chars.len() % 4 == 0 && j + 1 < b.len() && b[j + 1].is_ascii_alphanumeric() {
                j += 1;
            } else {
                break;
            }
        }
        if chars.len() == want && (j == b.len() || !b[j].is_ascii_alphanumeric()) && iban_checksum_ok(&chars) {
            hits.push(Hit { start, end: j, kind: "iban", canon: Some(chars.iter().map(|&c| char::from(c)).collect()) });
            i = j;
        }
    }
}

/// ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1.
fn iban_checksum_ok(chars: &[u8]) -> bool {
    let mut rem = 0u32;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// `AAA-GG-SSSS` with a valid area (not 000, 666 or 9xx), group (not 00) and serial (not
/// 0000), standing alone (not part of a longer dashed number).
pub(super) fn find_ssns(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let mut i = 0;
    while i + 11 <= b.len() {
        let ok = digits(i..i + 3)
            && b[i + 3] == b'-'
            && digits(i + 4..i + 6)
            && b[i + 6] == b'-'
            && digits(i + 7..i + 11)
            && boundary_before(b, i)
            && (i == 0 || b[i - 1] != b'-')
            && b.get(i + 11).is_none_or(|&c| !c.is_ascii_alphanumeric() && c != b'-');
        if ok {
            let area = &b[i..i + 3];
            let valid = area != b"000"
                && area != b"666"
                && area[0] != b'9'
                && &b[i + 4..i + 6] != b"00"
                && &b[i + 7..i + 11] != b"0000";
            if valid {
                hits.push(Hit::new(i, i + 11, "ssn"));
                i += 11;
                continue;
            }
        }
        i += 1;
    }
}
