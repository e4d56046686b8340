//! Unit tests of the masking policy: each detector, key naming styles, nesting, and robustness.

use super::*;
use serde_json::json;

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.\
                   dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

fn masker() -> Masker {
    Masker::new(b"test-key")
}

/// Each case marks its secret with ⟦ ⟧: masking the unmarked text must replace exactly
/// that part by `pseudonym(kind, secret)` (card digits without separators).
fn check(kind: &str, cases: &[&str]) {
    let m = masker();
    for case in cases {
        let (before, rest) = case.split_once('⟦').expect("case marks a secret");
        let (secret, after) = rest.split_once('⟧').expect("case closes the secret");
        let value = match kind {
            "card" => secret.replace([' ', '-'], ""),
            _ => secret.to_string(),
        };
        let want = format!("{before}{}{after}", m.pseudonym(kind, &value));
        let got = m.mask_str(&format!("{before}{secret}{after}"));
        assert_eq!(got.as_deref(), Some(want.as_str()), "case {case:?}");
        assert_no_fragment(&want, secret);
    }
}

/// No 6-character window of `secret` may survive in `out`.
fn assert_no_fragment(out: &str, secret: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for w in chars.windows(6.min(chars.len())) {
        let frag: String = w.iter().collect();
        assert!(!out.contains(&frag), "{out:?} leaks {frag:?} of {secret:?}");
    }
}

fn assert_unmasked(inputs: &[&str]) {
    for s in inputs {
        assert_eq!(masker().mask_str(s), None, "input {s:?}");
    }
}

#[test]
fn keys_match_across_naming_styles() {
    let keys = "password Password PASSWORD user_password userPassword user-password passwd \
                X-Api-Key apiKey api_key APIKEY client_secret clientSecret Set-Cookie \
                set_cookie cookie cookies accessToken refresh-token session_token token \
                authorization Proxy-Authorization auth_header card card_number cardNumber \
                CVV cvc pan ssn private_key privateKey secret password_hash credentials \
                x.api.key id_token_hint sessionId pwd pass passcode user_pin card_cvv cardCvv \
                customer_ssn otp_code DB_PASS userpass smtpPwd basic_auth x-auth httpAuth iban \
                account_number routing_number tax_id dob date_of_birth 2fa_code OAuthToken \
                XApiKey APIKey client-secret secrets refresh_tokens pin_code cvv2 passphrase \
                Kennwort contraseña PASSWORD_CONFIRMATION signature sig";
    for k in keys.split_whitespace() {
        assert!(Masker::is_sensitive_key(k), "{k} should be sensitive");
    }
}

#[test]
fn ordinary_keys_are_not_sensitive() {
    let keys = "username email event_id action span panel company cardinality token_count \
                max_tokens token_type password_changed_at secret_name api_key_id spin \
                pinned passage ip user_agent discard author keyboard_layout tests_passed \
                passenger compass bypass_cache tokenizer_version spinner auth_method oauth OAuth \
                oauth_provider secretary passwordless password_policy nextToken page_token \
                token_expires_at card_brand card_last4 secret_key_id private_key_id authority \
                opinion pinterest_url passport_country cookie_consent password_file";
    for k in keys.split_whitespace().chain([""]) {
        assert!(!Masker::is_sensitive_key(k), "{k} should not be sensitive");
    }
}

#[test]
fn token_members_holding_numbers_are_counts() {
    let m = masker();
    let mut v = json!({"tokens": 1500, "input_tokens": 12.5, "token": "tok-1234567", "tokens_used": "x"});
    assert_eq!(m.mask_value(&mut v), 1);
    assert_eq!(v["tokens"], 1500);
    assert_eq!(v["input_tokens"], 12.5);
    assert_eq!(v["token"], m.pseudonym("field", "tok-1234567"));
    assert_eq!(v["tokens_used"], "x");
}

#[test]
fn key_words_split_on_every_style() {
    // Each pair: a key, and whether `pin` is one of its words.
    for (key, pin) in [
        ("user_pin", true),
        ("userPin", true),
        ("USER-PIN", true),
        ("user.pin", true),
        ("user pin", true),
        ("userPIN", true),
        ("PINCode", true),
        ("pin2", true),
        ("userpin", true),
        ("pinned", false),
        ("spinner", false),
        ("spin", false),
        ("hairpin", false),
        ("pinyin", false),
    ] {
        assert_eq!(Masker::is_sensitive_key(key), pin, "{key}");
    }
}

#[test]
fn cards_are_masked_in_any_format() {
    let cards = "4111111111111111 4222222222222 5555555555554444 2221000000000009 \
                 378282246310005 371449635398431 6011111111111117 6445644564456445 \
                 3530111333300000 30569309025904 36227206271667 6500000000000002";
    for card in cards.split_whitespace() {
        check("card", &[&format!("paid with ⟦{card}⟧, thanks")]);
    }
    check("card", &["(⟦4111-1111-1111-1111⟧)", "exp 12 ⟦4111 1111 1111 1111⟧ 25", "x=⟦4111111111111111⟧.5"]);
    // The pseudonym is over the digits, so formatting does not break correlation.
    let m = masker();
    assert_eq!(m.mask_str("4111 1111 1111 1111"), m.mask_str("4111111111111111"));
}

#[test]
fn non_card_numbers_are_kept() {
    assert_unmasked(&[
        "4111111111111112",                                   // fails Luhn
        "1700000000004 at 1700000000000",                     // epoch ms (first is Luhn-valid): no card IIN
        "1234567890123452 9000000000000001 7000000000000005", // Luhn-valid, unknown IIN
        "order 12345678 shipped",
        "41111111111111111111", // 20 digits
        "a4111111111111111 4111111111111111b",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "550e8400-e29b-41d4-a716-446655440000",
        "4111 1111 1111",
    ]);
}

#[test]
fn jwts_are_masked() {
    check("jwt", &[&format!("id=⟦{JWT}⟧ ok"), &format!("→⟦{JWT}⟧←")]);
    check("jwt", &["alg none: ⟦eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.⟧ x"]);
    assert_unmasked(&["payload eyJmb28iOiJiYXIifQ== only", "heyJude.abc.def", "eyJab.eyJc"]);
}

#[test]
fn bearer_tokens_are_masked_but_prose_is_not() {
    check(
        "bearer",
        &[
            "sent Bearer ⟦abc.def-123_456~x/y=⟧ to api",
            "BEARER\t⟦abcdefghijklmnopqrstuvwxyz⟧",
            "é Bearer ⟦abc123def456⟧ ß",
        ],
    );
    assert_unmasked(&["Bearer tokens are used; bearer authentication failed", "Bearer"]);
    assert_unmasked(&["bearers abc12345678", "xbearer abc12345678", "Bearer abc1"]);
}

#[test]
fn prefixed_secret_keys_are_masked() {
    let keys = "sk_live_4eC39HqLyjWDarjtT1zdp7dc sk_test_4eC39HqLyjWDarjtT1zdp7dc \
                rk_live_51H8abcdefghijklmnop ghp_16C7e42F292c6912E7710c838347Ae178B4a \
                github_pat_11ABCDEFG0123456789_abcdefghijklmnop glpat-abcdefghij0123456789 \
                xoxb-123456789012-abcdefghijkl xoxp-1234-5678-abcdefghij AKIAIOSFODNN7EXAMPLE";
    for key in keys.split_whitespace() {
        check("secret_key", &[&format!("cfg: ⟦{key}⟧\n"), &format!("/hook/⟦{key}⟧?a=1")]);
    }
    assert_unmasked(&[
        "pk_live_4eC39HqLyjWDarjtT1zdp7dc sk_live_short task_live_abcdefghijklmnop",
        "AKIAIOSFODNN7EXAMPLEX AKIAiosfodnn7example xAKIAIOSFODNN7EXAMPLE",
    ]);
}

#[test]
fn pem_private_keys_are_masked() {
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
    for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY"] {
        let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----");
        check("private_key", &[&format!("key:\n⟦{pem}⟧\ndone")]);
    }
    // Truncated: everything from BEGIN on is masked.
    check("private_key", &[&format!("x ⟦-----BEGIN EC PRIVATE KEY-----\n{body}⟧")]);
    // Truncated, the mask runs to the end of the key body (base64, line breaks, headers).
    check(
        "private_key",
        &["⟦-----BEGIN ü PRIVATE KEY-----⟧é", "⟦-----BEGIN PRIVATE KEY-----\\nMIIE\\nAB==⟧\", \"n\": 1"],
    );
    let public = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----");
    assert_unmasked(&[&public, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"]);
}

#[test]
fn sensitive_pairs_in_text_and_query_strings() {
    check(
        "field",
        &[
            "/reset?token=⟦abc123⟧&x=1",
            "?a=1&api_key=⟦k-9#frag⟧",
            // An unquoted value runs to the end of its field, so passphrases go whole.
            "login password: ⟦hunter2 for bob⟧",
            "login password=⟦hunter2⟧ user=bob",
            r#"body {"user":"bob","Password" : "⟦hu\"nter2⟧","n":1}"#,
            "Cookie: ⟦sid=abc123; theme=dark⟧\nHost: x",
            "Authorization: ⟦Token abc⟧\nHost: x",
            "мой password=⟦пароль123€ ok⟧",
            "token=\"⟦ü\\⟧",
        ],
    );
    check("password", &["dsn postgres://app:⟦s3cr3t-pw⟧@db:5432/vigil"]);
    // The specific detector names the kind of the merged span.
    let m = masker();
    let basic = "Basic dXNlcjpwYXNzd29yZA==";
    assert_eq!(
        m.mask_str(&format!("Authorization: {basic}")),
        Some(format!("Authorization: {}", m.pseudonym("basic_auth", basic)))
    );
    assert_unmasked(&["/search?q=token&page=2", "user=bob&x=1", "time: 12:30", "password="]);
    assert_unmasked(&["token_type=bearer", "password=[masked:field:0123456789ab]"]);
    assert_unmasked(&["https://host:8080/x", "日本語のテキスト", "€:€=€", "ü://ü@ü"]);
}

#[test]
fn forged_pseudonyms_do_not_hide_secrets() {
    let m = masker();
    let forged = "[masked:field:0123456789ab]hunter2";
    let out = m.mask_str(&format!("password={forged}"));
    assert_eq!(out, Some(format!("password={}", m.pseudonym("field", forged))));
    let mut v = json!({"password": "[masked:hunter2]", "token": "[masked:field:0123456789ab]"});
    assert_eq!(m.mask_value(&mut v), 1);
    assert_eq!(v["password"], m.pseudonym("field", "[masked:hunter2]"));
    assert_eq!(v["token"], "[masked:field:0123456789ab]");
}

#[test]
fn mask_value_walks_nested_details() {
    let m = masker();
    let mut v = json!({
        "user": "bob", "count": 3, "ok": true,
        "details": {
            "userPassword": "hunter2",
            "Cookie": {"sid": "abc"},
            "pin": 1234,
            "headers": [{"X-Api-Key": "k-123"}, "Bearer abcdef123456"],
            "url": "/reset?token=abc123&x=1",
            "token_type": "refresh",
            "card_on_file": 4111111111111111_u64,
            "empty": null,
        },
    });
    let before = v.clone();
    assert_eq!(m.mask_value(&mut v), 7);
    let field = |s: &str| json!(m.pseudonym("field", s));
    let d = &v["details"];
    assert_eq!(d["userPassword"], field("hunter2"));
    assert_eq!(d["Cookie"], field(r#"{"sid":"abc"}"#));
    assert_eq!(d["pin"], field("1234"));
    assert_eq!(d["headers"][0]["X-Api-Key"], field("k-123"));
    let bearer = m.pseudonym("bearer", "abcdef123456");
    assert_eq!(d["headers"][1], format!("Bearer {bearer}"));
    let token = m.pseudonym("field", "abc123");
    assert_eq!(d["url"], format!("/reset?token={token}&x=1"));
    assert_eq!(d["card_on_file"], m.pseudonym("card", "4111111111111111"));
    assert_eq!(d["token_type"], before["details"]["token_type"]);
    assert_eq!(d["empty"], Value::Null);
    for k in ["user", "count", "ok"] {
        assert_eq!(v[k], before[k]);
    }
    // Masking is idempotent: a second pass finds nothing.
    let once = v.clone();
    assert_eq!(m.mask_value(&mut v), 0);
    assert_eq!(v, once);
}

#[test]
fn secret_object_keys_are_renamed() {
    let mut v = json!({"sessions": {JWT: {"ip": "10.0.0.1"}}});
    assert_eq!(masker().mask_value(&mut v), 1);
    let text = v.to_string();
    assert_no_fragment(&text, JWT);
    assert!(text.contains(r#"{"ip":"10.0.0.1"}"#), "{text}");
}

#[test]
fn deep_nesting_does_not_overflow() {
    let mut v = json!("password=hunter2");
    for _ in 0..100_000 {
        v = Value::Array(vec![v]);
    }
    assert_eq!(masker().mask_value(&mut v), 1);
    // Drop iteratively too: serde_json's own Drop of a Value recurses.
    let mut stack = vec![v];
    while let Some(mut x) = stack.pop() {
        if let Value::Array(a) = &mut x {
            stack.append(a);
        }
    }
}

#[test]
fn pseudonyms_are_stable_and_keyed() {
    let (a, b) = (Masker::new(b"k1"), Masker::new(b"k2"));
    let p = a.pseudonym("card", "4111111111111111");
    assert_eq!(p, a.clone().pseudonym("card", "4111111111111111"));
    assert_ne!(p, b.pseudonym("card", "4111111111111111"));
    assert_ne!(p, a.pseudonym("card", "4111111111111112"));
    assert_eq!(pseudonym_len(p.as_bytes()), Some(p.len()));
    assert!(p.starts_with("[masked:card:"), "{p}");
    assert_eq!(Masker::new(b"").pseudonym("field", "x").len(), 27);
    assert_eq!(format!("{a:?}"), "Masker { .. }");
}

#[test]
fn never_panics_on_random_input() {
    let pieces: Vec<&str> = "eyJ . - = : \" ' \\ é 日 € 😀 4 1 0 5 Bearer sk_live_ -----BEGIN \
                             PRIVATE KEY----- -----END [masked: ] & ?token password AKIA :// @ \
                             a Z _"
        .split_whitespace()
        .chain([" ", "\n", "\t"])
        .collect();
    let m = masker();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..5000 {
        let s: String = (0..next(60)).map(|_| pieces[next(pieces.len())]).collect();
        if let Some(out) = m.mask_str(&s) {
            assert!(out.contains("[masked:"), "{s:?} -> {out:?}");
        }
        let mut v = json!({ s.clone(): s, "password": "x" });
        assert!(m.mask_value(&mut v) >= 1);
    }
}

#[test]
fn large_adversarial_inputs_stay_fast() {
    let m = masker();
    let started = std::time::Instant::now();
    let units = "= : token= token:\" eyJ eyJ. 4- 1 -----BEGIN bearer [masked: ://@: a";
    for unit in units.split_whitespace().chain(["4 ", "bearer "]) {
        let _ = m.mask_str(&unit.repeat(64 * 1024 / unit.len()));
    }
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
}

/// Found by the `ingest` fuzz target: masking a long JWT inside a quoted key shortened the key
/// enough for the pair detector to see `Authorization` on the next pass.
#[test]
fn masking_is_stable_when_a_key_shrinks() {
    let m = masker();
    let s = r#""curl Authorization: Bearer eyJhbGciOiJIUzI0NiJ9.eyJzdWIiOiIxkn0.c2": "postgres://u:pw@db/x", "n": 1"#;
    let out = m.mask_str(s).expect("the JWT is masked");
    assert_eq!(m.mask_str(&out), None, "{out}");
    assert_no_fragment(&out, "eyJhbGciOiJIUzI0NiJ9");
}
