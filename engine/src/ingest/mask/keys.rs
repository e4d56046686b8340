//! Which member names hold secrets or PII: the key half of the masking policy, used by
//! `Masker::mask_value` (JSON members, name/value lists) and by the text detectors of
//! `pairs.rs` (`password=..`, `<apiKey>..`).
//!
//! A key is split into words (separators `_ - . / :` and spaces, camelCase, acronym ends,
//! digit-to-letter), lowercased and joined; stems then match at word boundaries only, so
//! `user_pin`, `cardCvv` and `DB_PASS` match while `pinned`, `spinner`, `author`,
//! `tests_passed`, `compass` and `tokenizer_version` do not. A benign qualifier after the
//! stem (`token_type`, `password_changed_at`, `secret_name`) or a count/pagination word
//! before `token` (`max_tokens`, `next_token`) leaves the key readable.

/// How a key is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not sensitive.
    Readable,
    /// The whole value is a secret or PII.
    Sensitive,
    /// Sensitive unless the value is a number: a `tokens` member holding a number is a
    /// count (`"tokens": 1500`, `"tokens_per_second": 41.5` in LLM usage records), one
    /// holding a string is a token.
    SensitiveUnlessNumber,
}

/// Where a stem may sit in the normalized key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Anywhere, even glued inside a word (`dbpasswordhash`); what follows it in the same
    /// word is read as the first qualifier (`passwordless` is benign).
    Glued,
    /// Ends at a word end (a plural `s` or trailing digits allowed); starts at a word start
    /// or ends a glued word that is not on the [`GLUE_EXCEPTIONS`] list (`userpin` yes,
    /// `spin` no).
    Word,
    /// Exactly one word (`pan`, `dob`, `sig`).
    WholeWord,
    /// The last word of the key, possibly glued (`basic_auth`, `x-auth`, `httpauth`), but not
    /// `auth_method` or `oauth`.
    LastWord,
    /// The entire key (`card`, `jwt`).
    WholeKey,
}

/// What a stem names, for the count rule of [`Verdict::SensitiveUnlessNumber`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Secret,
    Token,
}

/// One stem of the denylist, normalized (lowercase, no separators).
struct Stem {
    text: &'static str,
    fit: Fit,
    sort: Sort,
}

const fn s(text: &'static str, fit: Fit) -> Stem {
    Stem { text, fit, sort: Sort::Secret }
}

/// The denylist. Secrets: credentials of any kind. PII: identifiers that allow identity
/// theft or payment fraud and that no detection needs (government ids, bank accounts, card
/// data, date of birth). Kept readable on purpose: user names, emails, phone numbers, IPs,
/// device and account ids, which detection rules correlate on.
#[rustfmt::skip]
const STEMS: &[Stem] = &[
    // Passwords and passphrases, in a few languages.
    s("password", Fit::Glued), s("passwd", Fit::Glued), s("passphrase", Fit::Glued),
    s("passcode", Fit::Glued), s("passwort", Fit::Glued), s("kennwort", Fit::Glued),
    s("contrasena", Fit::Glued), s("contraseña", Fit::Glued), s("motdepasse", Fit::Glued),
    s("wachtwoord", Fit::Glued), s("senha", Fit::Word), s("haslo", Fit::Word),
    s("hasło", Fit::Word), s("sifre", Fit::Word), s("şifre", Fit::Word),
    s("пароль", Fit::Glued), s("密码", Fit::Glued), s("パスワード", Fit::Glued),
    s("pass", Fit::Word), s("pwd", Fit::Word), s("pword", Fit::Word),
    // Keys, secrets and credentials.
    s("secret", Fit::Word), s("credential", Fit::Glued), s("creds", Fit::Word), s("cred", Fit::Word),
    s("apikey", Fit::Glued), s("privatekey", Fit::Glued), s("privkey", Fit::Glued),
    s("secretkey", Fit::Glued), s("accesskey", Fit::Glued), s("signingkey", Fit::Glued),
    s("encryptionkey", Fit::Glued), s("masterkey", Fit::Glued), s("hmackey", Fit::Word),
    s("authkey", Fit::Word), s("sessionkey", Fit::Word), s("accountkey", Fit::Word),
    s("subscriptionkey", Fit::Word), s("functionkey", Fit::Word), s("functionskey", Fit::Word),
    s("mnemonic", Fit::Glued), s("seedphrase", Fit::Glued), s("recoveryphrase", Fit::Glued),
    s("authcode", Fit::Word), s("recoverycode", Fit::Word), s("recoverykey", Fit::Word), s("backupcode", Fit::Word),
    s("securityanswer", Fit::Word), s("maidenname", Fit::Glued),
    // Tokens, cookies, sessions and authorization headers.
    Stem { text: "token", fit: Fit::Word, sort: Sort::Token },
    s("cookie", Fit::Glued), s("authorization", Fit::Glued), s("authorisation", Fit::Glued),
    s("authheader", Fit::Word), s("auth", Fit::LastWord), s("sessionid", Fit::Word),
    s("sessid", Fit::Word), s("connectsid", Fit::Word), s("csrf", Fit::WholeWord), s("xsrf", Fit::WholeWord),
    s("bearer", Fit::WholeKey), s("jwt", Fit::WholeKey), s("signature", Fit::Word),
    s("sig", Fit::WholeWord),
    // One-time codes and PINs.
    s("otp", Fit::Word), s("totp", Fit::Word), s("hotp", Fit::Word), s("mfacode", Fit::Word),
    s("verificationcode", Fit::Word), s("securitycode", Fit::Word), s("smscode", Fit::Word),
    s("pin", Fit::Word), s("pincode", Fit::Word), s("2fa", Fit::Word), s("twofactorcode", Fit::Word),
    // Card data.
    s("card", Fit::WholeKey), s("cardnumber", Fit::Glued), s("cardno", Fit::Word),
    s("cardnum", Fit::Word), s("creditcard", Fit::Glued), s("debitcard", Fit::Glued),
    s("ccnumber", Fit::Word), s("ccnum", Fit::Word), s("pan", Fit::WholeWord),
    s("cvv", Fit::Word), s("cvv2", Fit::Word), s("cvc", Fit::Word), s("cvc2", Fit::Word),
    s("csc", Fit::WholeWord), s("cardverification", Fit::Glued),
    // Government ids, bank accounts, date of birth.
    s("ssn", Fit::Word), s("socialsecurity", Fit::Glued), s("taxid", Fit::Word),
    s("taxnumber", Fit::Word), s("itin", Fit::WholeWord),
    s("tin", Fit::WholeWord), s("ein", Fit::WholeWord), s("sin", Fit::WholeKey), s("nationalid", Fit::Glued),
    s("nationalinsurance", Fit::Glued), s("nino", Fit::WholeWord),
    s("passport", Fit::Word), s("passportnumber", Fit::Word), s("passportno", Fit::Word),
    s("driverslicense", Fit::Glued), s("driverlicense", Fit::Glued),
    s("driverslicence", Fit::Glued), s("iban", Fit::Word), s("accountnumber", Fit::Glued),
    s("acctnumber", Fit::Glued), s("accountno", Fit::Word), s("acctno", Fit::Word),
    s("accountnum", Fit::Word), s("acctnum", Fit::Word),
    s("bankaccount", Fit::Glued), s("routingnumber", Fit::Glued), s("sortcode", Fit::Word),
    s("dob", Fit::WholeWord), s("dateofbirth", Fit::Glued), s("birthdate", Fit::Glued),
    s("birthday", Fit::Word),
];

/// Words that end in a short stem without being it (`bypass`, `spin`, `oauth`).
#[rustfmt::skip]
const GLUE_EXCEPTIONS: &[&str] = &[
    "bypass", "compass", "encompass", "overpass", "underpass", "trespass", "surpass",
    "boardingpass", "spin", "backspin", "tailspin", "hairpin", "kingpin", "linchpin",
    "lynchpin", "tiepin", "pushpin", "oauth", "sacred",
];

/// Qualifiers after a stem that name metadata about the secret, not the secret: matched
/// against the first word after the stem and against everything after it, joined.
#[rustfmt::skip]
const BENIGN_TAILS: &[&str] = &[
    "id", "ids", "type", "types", "count", "counts", "length", "len", "size", "policy",
    "policies", "expiry", "expires", "expiresat", "expiresin", "expiration", "expired", "ttl",
    "age", "lifetime", "duration", "timeout", "changed", "changedat", "updated", "updatedat",
    "created", "createdat", "rotated", "rotatedat", "rotation", "lastused", "lastusedat", "used",
    "remaining", "limit", "limits", "attempts", "attempt", "retries", "failures", "failed",
    "strength", "score", "complexity", "required", "enabled", "disabled", "present", "valid",
    "validity", "verified", "set", "reset", "name", "names", "version", "format", "uri", "url",
    "endpoint", "path", "algorithm", "alg", "scheme", "method", "methods", "mode", "provider",
    "status", "state", "result", "error", "errors", "reason", "rule", "rules", "label", "kind",
    "category", "field", "fields", "header", "arn", "ref", "less", "manager", "last4",
    "lastfour", "suffix", "masked", "consent", "banner", "domain", "samesite", "secure",
    "httponly", "maxage", "country", "issuer", "issued", "audience", "scope", "scopes", "time",
    "date", "timestamp", "at", "rate", "through", "thru", "fail", "per", "min", "max", "minimum",
    "maximum", "last", "days", "tries", "retry", "match", "matched", "mismatch", "store",
    "source", "location", "file", "filename", "dir", "command", "cmd", "env", "var",
];

/// Words before `token`/`tokens` (or before a plural stem) that make the key a count or a
/// pagination cursor (`max_tokens`, `total_tokens`, `next_token`, `num_secrets`).
#[rustfmt::skip]
const BENIGN_HEADS: &[&str] = &[
    "max", "min", "num", "total", "count", "of", "prompt", "completion", "input", "output",
    "cached", "reasoning", "page", "nextpage", "next", "pagination", "continuation",
    "cancellation", "idempotency", "sync",
];

/// [`STEMS`] by their first byte, so each position of a key tries only a few.
fn by_first_byte() -> &'static [Vec<&'static Stem>] {
    static TABLE: std::sync::LazyLock<Vec<Vec<&'static Stem>>> = std::sync::LazyLock::new(|| {
        let mut table = vec![Vec::new(); 256];
        for stem in STEMS {
            table[usize::from(stem.text.as_bytes()[0])].push(stem);
        }
        table
    });
    &TABLE
}

/// The key, lowercased with separators removed, and where its words start.
struct Words {
    text: Vec<u8>,
    /// `starts[i]`: a word starts at byte `i` of `text` (`starts[text.len()]` is true).
    starts: Vec<bool>,
}

impl Words {
    fn split(key: &str) -> Words {
        let mut text = Vec::with_capacity(key.len());
        let mut starts = Vec::with_capacity(key.len() + 1);
        let chars: Vec<char> = key.chars().collect();
        let mut sep = true;
        for (i, &c) in chars.iter().enumerate() {
            if !c.is_alphanumeric() {
                sep = true;
                continue;
            }
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let camel = prev.is_some_and(|p| {
                (p.is_lowercase() && c.is_uppercase())
                    // `APIKey` is `API Key`, but `OAuth` and `XApiKey` keep a lone capital.
                    || (p.is_uppercase()
                        && c.is_uppercase()
                        && next.is_some_and(char::is_lowercase)
                        && i >= 2
                        && chars[i - 2].is_uppercase())
                    || (p.is_ascii_digit() && c.is_alphabetic())
            });
            let start = sep || camel;
            sep = false;
            let mut buf = [0u8; 4];
            for (k, l) in c.to_lowercase().enumerate() {
                let bytes = l.encode_utf8(&mut buf).as_bytes();
                for (j, &byte) in bytes.iter().enumerate() {
                    text.push(byte);
                    starts.push(start && k == 0 && j == 0);
                }
            }
        }
        starts.push(true);
        Words { text, starts }
    }

    /// Start of the word holding byte `i`.
    fn word_start(&self, i: usize) -> usize {
        (0..=i).rev().find(|&k| self.starts[k]).unwrap_or(0)
    }

    /// End of the word starting at or holding byte `i`.
    fn word_end(&self, i: usize) -> usize {
        (i + 1..=self.text.len()).find(|&k| self.starts[k]).unwrap_or(self.text.len())
    }
}

/// Most member names remembered per thread by [`verdict`] (events of one integration
/// repeat the same few dozen names); the memo is emptied when it fills.
const MEMO_CAPACITY: usize = 4096;
/// Names longer than this are not remembered (nor worth it).
const MEMO_KEY_LEN: usize = 64;

/// Classifies a member name; see the module doc.
pub(super) fn verdict(key: &str) -> Verdict {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static MEMO: RefCell<HashMap<Box<str>, Verdict, foldhash::fast::RandomState>> = RefCell::default();
    }
    if key.len() > MEMO_KEY_LEN {
        return classify(key);
    }
    if let Some(v) = MEMO.with(|m| m.borrow().get(key).copied()) {
        return v;
    }
    let v = classify(key);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MEMO_CAPACITY {
            m.clear();
        }
        m.insert(key.into(), v);
    });
    v
}

fn classify(key: &str) -> Verdict {
    if key.is_empty() || key.len() > 256 {
        // Longer "keys" are text; the value detectors look at them.
        return Verdict::Readable;
    }
    // Pseudonyms in a key (a masked secret used as a key) say nothing about it; ignoring
    // them keeps the verdict the same before and after masking.
    let stripped;
    let key = if key.contains("[masked:") {
        stripped = without_pseudonyms(key);
        stripped.as_str()
    } else {
        key
    };
    let w = Words::split(key);
    let n = w.text.as_slice();
    let mut verdict = Verdict::Readable;
    let mut i = 0;
    while i < n.len() {
        // The longest stem that fits at `i` decides for `i` (`secret_key_id` is an id).
        let mut best: Option<(&Stem, usize, bool)> = None;
        for stem in by_first_byte()[usize::from(n[i])].iter().filter(|st| n[i..].starts_with(st.text.as_bytes())) {
            if best.is_some_and(|(b, _, _)| b.text.len() >= stem.text.len()) {
                continue;
            }
            if let Some((tail, plural)) = fits(&w, i, stem) {
                best = Some((stem, tail, plural));
            }
        }
        if let Some((stem, tail, plural)) = best
            && !benign_tail(&w, tail)
            && !((stem.sort == Sort::Token || plural) && benign_head(&w, i))
        {
            match stem.sort {
                Sort::Secret => return Verdict::Sensitive,
                Sort::Token => verdict = Verdict::SensitiveUnlessNumber,
            }
        }
        i += 1;
    }
    verdict
}

fn without_pseudonyms(key: &str) -> String {
    let b = key.as_bytes();
    let mut out = String::with_capacity(key.len());
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        match super::pseudonym_len(&b[i..]) {
            Some(n) => {
                out.push_str(&key[last..i]);
                i += n;
                last = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&key[last..]);
    out
}

/// Whether `stem` fits at byte `i`; if so, where the qualifier after it starts and whether
/// a plural `s` was taken.
fn fits(w: &Words, i: usize, stem: &Stem) -> Option<(usize, bool)> {
    let n = &w.text;
    let end = i + stem.text.len();
    let at_start = w.starts[i];
    // Where the stem's word really ends: plural `s` or digits may follow it.
    let word_end = |e: usize| -> Option<(usize, bool)> {
        if w.starts[e] {
            return Some((e, false));
        }
        if n[e] == b's' && w.starts[e + 1] {
            return Some((e + 1, true));
        }
        let d = (e..n.len()).find(|&k| w.starts[k] || !n[k].is_ascii_digit()).unwrap_or(n.len());
        w.starts[d].then_some((d, false))
    };
    let glued_ok = || {
        let ws = w.word_start(i);
        let word = &n[ws..w.word_end(i)];
        !GLUE_EXCEPTIONS.iter().any(|e| e.as_bytes() == word)
    };
    match stem.fit {
        Fit::Glued => Some(word_end(end).unwrap_or((end, false))),
        Fit::Word => word_end(end).filter(|_| at_start || glued_ok()),
        Fit::WholeWord => word_end(end).filter(|_| at_start),
        Fit::LastWord => word_end(end).filter(|&(e, _)| e == n.len() && (at_start || glued_ok())),
        Fit::WholeKey => (i == 0 && end == n.len()).then_some((end, false)),
    }
}

fn benign_tail(w: &Words, tail: usize) -> bool {
    let n = &w.text;
    if tail >= n.len() {
        return false;
    }
    let first = &n[tail..w.word_end(tail)];
    let rest = &n[tail..];
    BENIGN_TAILS.iter().any(|t| t.as_bytes() == first || t.as_bytes() == rest)
}

fn benign_head(w: &Words, i: usize) -> bool {
    let n = &w.text;
    let head = if w.starts[i] {
        if i == 0 {
            return false;
        }
        &n[w.word_start(i - 1)..i]
    } else {
        &n[w.word_start(i)..i]
    };
    BENIGN_HEADS.iter().any(|h| h.as_bytes() == head)
}
