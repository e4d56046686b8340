//! The value detectors' shared pre-pass and gates, called by `Masker::mask_text_once` for
//! every string, object key and long number: one pass over the bytes records which byte
//! classes occur and how many digits, then each detector runs only when its gate holds.
//!
//! Every gate is a condition that any hit of its detector implies (so a gated-off detector
//! would have found nothing); most ordinary strings (ids, user agents, paths, short `details`
//! keys and values) pass none but the word-start scan's, or none at all. The comment on each
//! gate says why a hit needs it.

use super::{Hit, numbers, pairs, tokens};

/// `=` or `:`.
const PAIR: u16 = 1;
const LT: u16 = 2;
const DASH: u16 = 4;
const UPPER: u16 = 8;
const TILDE: u16 = 16;
const AT: u16 = 32;
const DIGIT: u16 = 64;
/// `J`, the third byte of every JWT (`eyJ`).
const J: u16 = 128;
/// `P`, in both private-key anchors (`PRIVATE KEY`, `Private-Lines:`).
const P: u16 = 256;
/// A space or a tab.
const BLANK: u16 = 512;

const CLASSES: [u16; 256] = {
    let mut t = [0u16; 256];
    t[b'=' as usize] = PAIR;
    t[b':' as usize] = PAIR;
    t[b'<' as usize] = LT;
    t[b'-' as usize] = DASH;
    t[b'~' as usize] = TILDE;
    t[b'@' as usize] = AT;
    t[b' ' as usize] = BLANK;
    t[b'\t' as usize] = BLANK;
    let mut c = b'A';
    while c <= b'Z' {
        t[c as usize] = UPPER;
        c += 1;
    }
    t[b'J' as usize] |= J;
    t[b'P' as usize] |= P;
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = DIGIT;
        d += 1;
    }
    t
};

/// Shortest IBAN (Norway, 15 characters, `numbers::IBAN_LENGTHS`).
const MIN_IBAN: usize = 15;

/// Runs every value detector whose gate holds for `s` (one pass over the bytes decides).
pub(super) fn detect(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut seen = 0u16;
    let mut digits = 0usize;
    for &c in b {
        let class = CLASSES[usize::from(c)];
        seen |= class;
        digits += usize::from(class & DIGIT != 0);
    }
    // Both anchors (`PRIVATE KEY`, `Private-Lines:`) hold a `P`.
    if seen & P != 0 {
        tokens::find_private_keys(s, hits);
    }
    // A JWT starts `eyJ`.
    if seen & J != 0 {
        tokens::find_jwts(s, hits);
    }
    if b.len() >= tokens::MIN_WORD_START_HIT {
        tokens::find_word_start_tokens(s, hits);
    }
    if seen & TILDE != 0 {
        tokens::find_azure_client_secrets(s, hits);
    }
    // A card is 12-19 digits in groups joined by single spaces, dashes or dots: a run of
    // digits and those separators holding 12 digits.
    if digits >= 12 && digit_run_holds(b, 12) {
        numbers::find_cards(s, hits);
    }
    // `AAA-GG-SSSS`: two dashes three bytes apart.
    if digits >= 9 && seen & DASH != 0 && dashes_three_apart(b) {
        numbers::find_ssns(s, hits);
    }
    // Two capitals, two check digits, at least 15 characters in all.
    if digits >= 2 && seen & UPPER != 0 && b.len() >= MIN_IBAN {
        numbers::find_ibans(s, hits);
    }
    if seen & PAIR != 0 {
        pairs::find_pairs(s, hits);
        // `scheme://user:password@host`.
        if seen & AT != 0 {
            pairs::find_url_passwords(s, hits);
        }
    }
    if seen & LT != 0 {
        pairs::find_xml(s, hits);
    }
    // `--name value`: a dash and the space after the name.
    if seen & (DASH | BLANK) == DASH | BLANK {
        pairs::find_cli_flags(s, hits);
    }
}

/// Whether some run of digits, spaces, dashes and dots holds at least `want` digits.
fn digit_run_holds(b: &[u8], want: usize) -> bool {
    let mut run = 0;
    for &c in b {
        if c.is_ascii_digit() {
            run += 1;
            if run >= want {
                return true;
            }
        } else if !matches!(c, b' ' | b'-' | b'.') {
            run = 0;
        }
    }
    false
}

/// Whether a `-` has another `-` three bytes after it.
fn dashes_three_apart(b: &[u8]) -> bool {
    memchr::memchr_iter(b'-', b).any(|i| b.get(i + 3) == Some(&b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gates' helpers against their plain definitions.
    #[test]
    fn gate_helpers() {
        assert!(digit_run_holds(b"card 4111 1111-1111.1111 end", 12));
        assert!(digit_run_holds(b"x123456789012", 12));
        assert!(!digit_run_holds(b"12345678901a2", 12));
        assert!(!digit_run_holds(b"req-9e3779b97f4a7c15 0123", 12));
        assert!(dashes_three_apart(b"078-05-1120"));
        assert!(!dashes_three_apart(b"sess-0001-abcd"));
        assert!(!dashes_three_apart(b"a-b"));
    }

    /// Every detector, ungated: the reference the gates must not change.
    fn detect_ungated(s: &str, hits: &mut Vec<Hit>) {
        tokens::find_private_keys(s, hits);
        tokens::find_jwts(s, hits);
        tokens::find_word_start_tokens(s, hits);
        tokens::find_azure_client_secrets(s, hits);
        numbers::find_cards(s, hits);
        numbers::find_ssns(s, hits);
        numbers::find_ibans(s, hits);
        pairs::find_pairs(s, hits);
        pairs::find_url_passwords(s, hits);
        pairs::find_xml(s, hits);
        pairs::find_cli_flags(s, hits);
    }

    fn spans(hits: &[Hit]) -> Vec<(usize, usize, &'static str, Option<&str>)> {
        hits.iter().map(|h| (h.start, h.end, h.kind, h.canon.as_deref())).collect()
    }

    /// Pieces of secrets and of ordinary text that generated strings are made of.
    const PIECES: &[&str] = &[
        "password",
        "token",
        "secret",
        "api_key",
        "Authorization",
        "Bearer ",
        "Basic ",
        "eyJ",
        "eyJhbGciOiJIUzI1NiJ9",
        ".",
        "-",
        "--",
        "_",
        " ",
        "\t",
        "\n",
        "=",
        ":",
        ": ",
        "=>",
        "\"",
        "'",
        "<",
        ">",
        "</",
        "/",
        "://",
        "@",
        "%3D",
        "~",
        "8Q~",
        "[masked:card:0123456789ab]",
        "****",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "Private-Lines:",
        "AKIA",
        "sk-",
        "sk_live_",
        "ghp_",
        "xoxb-",
        "SK",
        "AIza",
        "hooks.slack.com/services/",
        "bot",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "NO9386011117947",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "378282246310005",
        "078-05-1120",
        "123-45-6789",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "req-9e3779b97f4a7c15",
        "{",
        "}",
        "[",
        "]",
        ",",
        ";",
        "&",
        "cookie",
        "Cookie: ",
        "card",
        "iban",
        "pin",
        "value",
        "key",
        "\u{e9}",
        "\u{4e2d}",
        "<password>",
        "</password>",
        "<add key=\"ApiKey\" value=\"",
        "--password ",
        "https://u:pw@host/x",
        "client_secret=",
        "Date of Birth: ",
        "123456:",
    ];

    /// Generated strings (random runs of digits, capitals, hex, base64 and separators mixed
    /// with the pieces above, about a fifth of them holding a secret) and every text of the
    /// masking corpus' shape: the gated detectors find exactly what all of them find
    /// ungated, in the same order, so no gate hides a secret from its detector.
    #[test]
    fn the_gates_never_change_what_the_detectors_find() {
        const SETS: [&[u8]; 6] = [
            b"0123456789",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            b"0123456789abcdefABCDEF",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=~",
            b"0123456789 -.",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut found, mut total) = (0, 0);
        for _ in 0..40_000 {
            let mut s = String::new();
            for _ in 0..1 + next(10) {
                let kind = next(10);
                if kind < 6 {
                    let set = SETS[kind];
                    for _ in 0..1 + next(48) {
                        s.push(char::from(set[next(set.len())]));
                    }
                } else {
                    s.push_str(PIECES[next(PIECES.len())]);
                }
            }
            let (mut gated, mut all) = (Vec::new(), Vec::new());
            detect(&s, &mut gated);
            detect_ungated(&s, &mut all);
            assert_eq!(spans(&gated), spans(&all), "{s:?}");
            found += usize::from(!all.is_empty());
            total += 1;
        }
        // The generator reaches the detectors often, and not always.
        assert!(found > total / 10 && found < total * 9 / 10, "{found} of {total} strings had a hit");
    }
}
