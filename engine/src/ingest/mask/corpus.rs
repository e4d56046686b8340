//! The masking corpus: table-driven cases, grouped by leak class, that pin the policy of
//! `mask.rs` down end to end. Each case has an id, what it shows, an input (a `details`
//! object, a text for `Masker::mask_str`, a top-level field or a whole event through
//! `validate_batch`) and an expectation: every secret hidden (no 6-character window of it
//! left outside pseudonyms; shorter secrets not left at all), optionally with text that must
//! survive; or the input kept exactly. Every output is also checked to be stable under a
//! second masking.

use super::*;
use crate::ingest::validate_batch;

/// What a case feeds in.
enum Input {
    /// A `details` object (JSON text) for `Masker::mask_value`.
    D(&'static str),
    /// A string for `Masker::mask_str`.
    T(&'static str),
    /// A top-level field (`geo.city` for the city) of an otherwise minimal event, through
    /// `validate_batch`.
    F(&'static str, &'static str),
    /// A whole event (JSON text) through `validate_batch`: the stored event, or the
    /// problems of the 400.
    E(&'static str),
}
use Input::{D, E, F, T};

/// What must come out.
enum Expect {
    /// None of these secrets survive; these other texts do.
    Hides(&'static [&'static str], &'static [&'static str]),
    /// The input comes out exactly as it went in.
    Keeps,
}

struct Case {
    id: &'static str,
    what: &'static str,
    input: Input,
    expect: Expect,
}

macro_rules! hides {
    ($id:literal, $what:literal, $input:expr, [$($secret:expr),+ $(,)?] $(, keeps [$($kept:expr),+ $(,)?])?) => {
        Case { id: $id, what: $what, input: $input, expect: Expect::Hides(&[$($secret),+], &[$($($kept),+)?]) }
    };
}
macro_rules! keeps {
    ($id:literal, $what:literal, $input:expr) => {
        Case { id: $id, what: $what, input: $input, expect: Expect::Keeps }
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // --- 1. Key denylist: short, affixed and styled names -------------------------------
    hides!("key-pwd", "pwd", D(r#"{"pwd": "Tr0ub4dor&3"}"#), ["Tr0ub4dor&3"]),
    hides!("key-pass", "pass as a whole key", D(r#"{"pass": "hunter2hunter2"}"#), ["hunter2hunter2"]),
    hides!("key-passcode", "passcode", D(r#"{"passcode": "246810"}"#), ["246810"]),
    hides!("key-user-pin", "user_pin", D(r#"{"user_pin": "482915"}"#), ["482915"]),
    hides!("key-pin-number", "numeric pin", D(r#"{"pin": 8251}"#), ["8251"]),
    hides!("key-card-cvv", "card_cvv", D(r#"{"card_cvv": "737"}"#), ["737"]),
    hides!("key-cardCvv", "camelCase cvv", D(r#"{"cardCvv": "4321"}"#), ["4321"]),
    hides!("key-customer-ssn", "customer_ssn", D(r#"{"customer_ssn": "078-05-1120"}"#), ["078-05-1120"]),
    hides!("key-otp-code", "otp_code", D(r#"{"otp_code": "918273"}"#), ["918273"]),
    hides!("key-db-pass", "DB_PASS env style", D(r#"{"DB_PASS": "s3cr3t-db-pass"}"#), ["s3cr3t-db-pass"]),
    hides!("key-smtp-pwd", "smtp_pwd", D(r#"{"smtp_pwd": "mailpw-7781"}"#), ["mailpw-7781"]),
    hides!("key-userpass-glued", "userpass glued", D(r#"{"userpass": "glued-pass-99"}"#), ["glued-pass-99"]),
    hides!("key-dbpassword-glued", "dbpassword glued", D(r#"{"dbpassword": "glued-pw-123"}"#), ["glued-pw-123"]),
    hides!("key-client-secret", "client_secret", D(r#"{"client_secret": "cs_9f8e7d6c5b4a"}"#), ["cs_9f8e7d6c5b4a"]),
    hides!("key-clientSecret", "clientSecret", D(r#"{"clientSecret": "cs-camel-5566"}"#), ["cs-camel-5566"]),
    hides!("key-creds", "creds", D(r#"{"creds": "admin:letmein99"}"#), ["admin:letmein99"]),
    hides!("key-private-key", "private_key", D(r#"{"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}"#), ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"]),
    hides!("key-access-key", "access_key", D(r#"{"access_key": "ak-plain-value-77"}"#), ["ak-plain-value-77"]),
    hides!("key-refresh-token", "refresh_token", D(r#"{"refresh_token": "rt-1f2e3d4c5b6a7980"}"#), ["rt-1f2e3d4c5b6a7980"]),
    hides!("key-session-token", "sessionToken", D(r#"{"sessionToken": "st-aabbccddeeff"}"#), ["st-aabbccddeeff"]),
    hides!("key-auth", "auth", D(r#"{"auth": "dXNlcjpwYXNzd29yZA"}"#), ["dXNlcjpwYXNzd29yZA"]),
    hides!("key-basic-auth", "basic_auth", D(r#"{"basic_auth": "bob:b4sic-pw"}"#), ["bob:b4sic-pw"]),
    hides!("key-x-api-key", "x-api-key header", D(r#"{"x-api-key": "key-live-99887766"}"#), ["key-live-99887766"]),
    hides!("key-X-API-KEY", "upper kebab", D(r#"{"X-API-KEY": "upper-key-4455"}"#), ["upper-key-4455"]),
    hides!("key-apiKey-dotted", "x.api.key", D(r#"{"x.api.key": "dotted-key-123"}"#), ["dotted-key-123"]),
    hides!("key-iban", "iban", D(r#"{"iban": "XX00 NOT AN IBAN 1234"}"#), ["NOT AN IBAN 1234"]),
    hides!("key-account-number", "account_number", D(r#"{"account_number": "000123456789"}"#), ["000123456789"]),
    hides!("key-routing-number", "routing_number", D(r#"{"routing_number": "021000021"}"#), ["021000021"]),
    hides!("key-tax-id", "tax_id", D(r#"{"tax_id": "12-3456789"}"#), ["12-3456789"]),
    hides!("key-dob", "dob", D(r#"{"dob": "1984-07-23"}"#), ["1984-07-23"]),
    hides!("key-date-of-birth", "dateOfBirth", D(r#"{"dateOfBirth": "1979-12-01"}"#), ["1979-12-01"]),
    hides!("key-secret", "secret", D(r#"{"secret": "s3kr1t-val-0001"}"#), ["s3kr1t-val-0001"]),
    hides!("key-nested", "nested object", D(r#"{"user": {"name": "bob", "password": "nested-pw-1"}}"#), ["nested-pw-1"], keeps ["bob"]),
    hides!("key-cvc2", "cvc2", D(r#"{"cvc2": "987"}"#), ["987"]),
    hides!("key-card-number", "card_number with spaces", D(r#"{"card_number": "4111 1111 1111 1111"}"#), ["4111 1111 1111 1111"]),
    hides!("key-ssn-camel", "socialSecurityNumber", D(r#"{"socialSecurityNumber": "219-09-9999"}"#), ["219-09-9999"]),
    hides!("key-passport", "passport_number", D(r#"{"passport_number": "X12345678"}"#), ["X12345678"]),
    hides!("key-mfa", "mfaCode", D(r#"{"mfaCode": "123456"}"#), ["123456"]),
    hides!("key-totp", "totp", D(r#"{"totp": "654321"}"#), ["654321"]),
    hides!("key-set-cookie", "Set-Cookie", D(r#"{"Set-Cookie": "sid=abc123def456; HttpOnly"}"#), ["abc123def456"]),
    hides!("key-signature", "signature", D(r#"{"signature": "t=1700000000,v1=5257a869e7ecebeda32affa62cd"}"#), ["5257a869e7ecebeda32affa62cd"]),
    hides!("key-aws-secret", "aws_secret_access_key", D(r#"{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#), ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
    hides!("key-tokens-list", "tokens holding strings", D(r#"{"tokens": ["tok-aaa111", "tok-bbb222"]}"#), ["tok-aaa111", "tok-bbb222"]),
    hides!("key-encryption-key", "encryptionKey", D(r#"{"encryptionKey": "ZW5jcnlwdGlvbmtleQ=="}"#), ["ZW5jcnlwdGlvbmtleQ=="]),
    hides!("key-mnemonic", "wallet mnemonic", D(r#"{"mnemonic": "abandon ability able about above absent"}"#), ["abandon ability able about above absent"]),
    hides!("key-recovery-codes", "recovery_codes", D(r#"{"recovery_codes": ["a1b2c3-d4e5f6", "g7h8i9-j0k1l2"]}"#), ["a1b2c3-d4e5f6", "g7h8i9-j0k1l2"]),
    hides!("key-kennwort", "German Kennwort", D(r#"{"Kennwort": "geheim123"}"#), ["geheim123"]),
    hides!("key-contrasena", "Spanish contraseña", D(r#"{"contraseña": "secreto123"}"#), ["secreto123"]),
    hides!("key-password-hash", "password_hash", D(r#"{"password_hash": "$2b$12$abcdefghijklmnopqrstuv"}"#), ["$2b$12$abcdefghijklmnopqrstuv"]),
    hides!("key-bearer-object", "object under a sensitive key", D(r#"{"credentials": {"user": "svc", "key": "obj-key-31337"}}"#), ["obj-key-31337"]),
    hides!("key-oauth-token", "OAuthToken", D(r#"{"OAuthToken": "oat-0a1b2c3d4e"}"#), ["oat-0a1b2c3d4e"]),
    hides!("key-csrf", "_csrf", D(r#"{"_csrf": "csrf-zz99yy88"}"#), ["csrf-zz99yy88"]),
    hides!("key-cookies", "cookies", D(r#"{"cookies": {"session": "ck-val-321987"}}"#), ["ck-val-321987"]),

    hides!("key-2fa", "2fa_code", D(r#"{"2fa_code": "314159"}"#), ["314159"]),
    hides!("key-card-verification", "card_verification_value", D(r#"{"card_verification_value": "852"}"#), ["852"]),
    hides!("key-auth-code", "auth_code", D(r#"{"auth_code": "ac-77aa88bb99"}"#), ["ac-77aa88bb99"]),
    hides!("key-pass-phrase", "pass_phrase", D(r#"{"pass_phrase": "four words in here"}"#), ["four words in here"]),
    hides!("key-confirm-password", "password_confirmation", D(r#"{"password_confirmation": "conf-pw-4321"}"#), ["conf-pw-4321"]),
    hides!("key-java-sysprop", "-Dpassword in a pair", T("java -Ddb.password=sysprop-pw-1 -jar app.jar"), ["sysprop-pw-1"], keeps ["-jar app.jar"]),
    keeps!("key-neg-placeholders", "redaction placeholders", D(r#"{"password": "********", "token": "[REDACTED]", "secret": "<filtered>", "api_key": null, "pin": true}"#)),
    keeps!("key-neg-float-tokens", "token rates and minimums", D(r#"{"tokens_per_second": 41.5, "password_min_length": 12, "pin_tries": 3}"#)),
    keeps!("key-neg-author", "author", D(r#"{"author": "Jane Doe"}"#)),
    keeps!("key-neg-keyboard", "keyboard_layout", D(r#"{"keyboard_layout": "azerty"}"#)),
    keeps!("key-neg-tests-passed", "tests_passed", D(r#"{"tests_passed": 12, "tests_failed": "none"}"#)),
    keeps!("key-neg-token-count", "token_count", D(r#"{"token_count": 1234}"#)),
    keeps!("key-neg-password-changed", "password_changed_at", D(r#"{"password_changed_at": "2024-05-01T10:00:00Z"}"#)),
    keeps!("key-neg-secret-name", "secret_name", D(r#"{"secret_name": "prod/db/password"}"#)),
    keeps!("key-neg-pinned", "pinned", D(r#"{"pinned": "yes", "spinner": "dots"}"#)),
    keeps!("key-neg-passenger", "passenger and compass", D(r#"{"passenger": "Ann Lee", "compass": "north"}"#)),
    keeps!("key-neg-bypass", "bypass_cache", D(r#"{"bypass_cache": "true"}"#)),
    keeps!("key-neg-tokenizer", "tokenizer_version", D(r#"{"tokenizer_version": "cl100k"}"#)),
    keeps!("key-neg-max-tokens", "LLM usage counts", D(r#"{"max_tokens": 4096, "prompt_tokens": 12, "total_tokens": 40, "tokens": 1500}"#)),
    keeps!("key-neg-token-type", "token_type", D(r#"{"token_type": "refresh", "token_expires_at": "2030-01-01"}"#)),
    keeps!("key-neg-api-key-id", "api_key_id", D(r#"{"api_key_id": "key_01HXYZ"}"#)),
    keeps!("key-neg-card-meta", "card brand and last4", D(r#"{"card_brand": "visa", "card_last4": "4242", "card_on_file": "yes"}"#)),
    keeps!("key-neg-auth-method", "auth_method and oauth", D(r#"{"auth_method": "password", "oauth_provider": "google", "OAuth": "enabled"}"#)),
    keeps!("key-neg-next-token", "pagination cursors", D(r#"{"nextToken": "page-2", "page_token": "p3"}"#)),
    keeps!("key-neg-words", "span, panel, company, discard", D(r#"{"span": "a", "panel": "b", "company": "c", "discard": "d", "cardinality": 3}"#)),
    keeps!("key-neg-password-policy", "password policy and reset", D(r#"{"password_policy": "min 12", "password_reset": "requested", "passwordless": "webauthn"}"#)),
    keeps!("key-neg-secretary", "secretary", D(r#"{"secretary": "Bob Smith"}"#)),
    keeps!("key-neg-empty", "empty password value", D(r#"{"password": ""}"#)),
    keeps!("key-neg-ids", "user ids and emails", D(r#"{"username": "alice", "email": "alice@example.com", "user_id": "u-123"}"#)),
    keeps!("key-neg-secret-key-id", "secret_key_id", D(r#"{"secret_key_id": "sk-id-1", "private_key_id": "0f1e2d3c"}"#)),

    // --- 2. Name/value lists and [key, value] pairs -------------------------------------
    hides!("nv-header-basic", "headers name/value", D(r#"{"headers": [{"name": "Authorization", "value": "Basic YWxpY2U6czNjcjN0"}]}"#), ["YWxpY2U6czNjcjN0"], keeps ["Authorization"]),
    hides!("nv-key-value", "key/value", D(r#"{"headers": [{"key": "X-Api-Key", "value": "k-abcdef123456"}]}"#), ["k-abcdef123456"]),
    hides!("nv-header-value", "header/value", D(r#"{"h": [{"header": "Cookie", "value": "session=abcdef123456"}]}"#), ["abcdef123456"]),
    hides!("nv-k-v", "k/v", D(r#"{"p": [{"k": "password", "v": "hunter2-kv"}]}"#), ["hunter2-kv"]),
    hides!("nv-k8s-env", "Kubernetes env", D(r#"{"env": [{"name": "DB_PASSWORD", "value": "pg-secret-42"}, {"name": "LOG_LEVEL", "value": "debug"}]}"#), ["pg-secret-42"], keeps ["debug"]),
    hides!("nv-aws-tags", "AWS Key/Value tags", D(r#"{"Tags": [{"Key": "api_token", "Value": "tok-998877665544"}]}"#), ["tok-998877665544"]),
    hides!("nv-cfn-params", "ParameterKey/ParameterValue", D(r#"{"Parameters": [{"ParameterKey": "DbPassword", "ParameterValue": "cfn-secret-77"}]}"#), ["cfn-secret-77"]),
    hides!("nv-pair-arrays", "[key, value] arrays", D(r#"{"pairs": [["password", "hunter2-pair"], ["Cookie", "a=b1c2d3e4"]]}"#), ["hunter2-pair", "b1c2d3e4"]),
    hides!("nv-raw-headers", "Node rawHeaders", D(r#"{"rawHeaders": ["Host", "example.com", "Authorization", "Token raw-tok-123456"]}"#), ["raw-tok-123456"], keeps ["example.com"]),
    hides!("nv-query-pairs", "query pair list", D(r#"{"query": [["token", "qtok-123456"], ["page", "2"]]}"#), ["qtok-123456"]),
    hides!("nv-form-cvv", "form fields", D(r#"{"form": {"fields": [{"name": "card_cvv", "value": "123"}]}}"#), ["123"]),
    hides!("nv-har", "HAR request", D(r#"{"request": {"queryString": [{"name": "api_key", "value": "qs-key-123456"}], "url": "/x"}}"#), ["qs-key-123456"]),
    hides!("nv-number-value", "numeric value", D(r#"{"params": [{"param": "pin", "value": 4321}]}"#), ["4321"]),
    hides!("nv-type-password", "form field of type password", D(r#"{"inputs": [{"id": "f1", "type": "password", "value": "typed-pw-55"}]}"#), ["typed-pw-55"]),
    hides!("nv-label", "label/value", D(r#"{"rows": [{"label": "API Token", "value": "lbl-tok-9090"}]}"#), ["lbl-tok-9090"]),
    keeps!("nv-neg-type-text", "form field of type text", D(r#"{"inputs": [{"id": "f1", "type": "text", "value": "hello"}]}"#)),
    keeps!("nv-neg-content-type", "ordinary headers", D(r#"{"headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "User-Agent", "value": "curl/8.4.0"}]}"#)),
    keeps!("nv-neg-pairs", "ordinary pairs", D(r#"{"pairs": [["user", "alice"], ["role", "admin"]]}"#)),
    keeps!("nv-neg-raw-headers", "ordinary rawHeaders", D(r#"{"rawHeaders": ["Host", "example.com", "Accept", "*/*"]}"#)),
    keeps!("nv-neg-field-list", "a list of field names", D(r#"{"changed_fields": ["password", "email", "phone"]}"#)),
    keeps!("nv-neg-benign-name", "benign name", D(r#"{"name": "password_changed_at", "value": "2024-05-01"}"#)),

    // --- 3. XML-style text --------------------------------------------------------------
    hides!("xml-element", "<password>", T("<login><user>bob</user><password>hunter2xml</password></login>"), ["hunter2xml"], keeps ["<user>bob</user>"]),
    hides!("xml-apikey", "<apiKey>", T("<apiKey>AKxyz-123456789</apiKey>"), ["AKxyz-123456789"]),
    hides!("xml-namespaced", "namespaced SOAP element", T("<soap:Body><ns1:Password>soap-secret-1</ns1:Password></soap:Body>"), ["soap-secret-1"]),
    hides!("xml-attribute", "password attribute", T(r#"<user name="bob" password="attr-secret-9"/>"#), ["attr-secret-9"], keeps ["bob"]),
    hides!("xml-add-key-value", ".NET appSettings", T(r#"<add key="ApiKey" value="cfg-key-123456"/>"#), ["cfg-key-123456"]),
    hides!("xml-input", "HTML input", T(r#"<input type="password" name="pwd" value="form-secret-5">"#), ["form-secret-5"]),
    hides!("xml-cdata", "CDATA", T("<secret><![CDATA[cdata-val-8811]]></secret>"), ["cdata-val-8811"]),
    hides!("xml-whitespace", "text with whitespace", T("<Token>\n  tok-whitespace-42\n</Token>"), ["tok-whitespace-42"]),
    hides!("xml-in-details", "XML body in details", D(r#"{"body": "<auth><token>xml-in-details-1</token></auth>"}"#), ["xml-in-details-1"]),
    hides!("xml-entry-key", "entry with key attribute", T(r#"<entry key="client_secret">entry-val-6622</entry>"#), ["entry-val-6622"]),
    hides!("xml-self-closing", "self-closing element with a value", T(r#"<password value="self-close-7"/>"#), ["self-close-7"]),
    keeps!("xml-neg-placeholder", "redacted element", T("<password>[REDACTED]</password>")),
    keeps!("xml-neg-author", "<author>", T("<author>Jane Doe</author>")),
    keeps!("xml-neg-policy", "<password_policy>", T("<password_policy>min 12 chars</password_policy>")),
    keeps!("xml-neg-prose", "<p> prose", T("<p>Password reset requested</p>")),
    keeps!("xml-neg-plain", "plain elements", T("<user><name>bob</name><role>admin</role></user>")),

    // --- 4. Multi-word passphrases ------------------------------------------------------
    hides!("mw-passphrase", "passphrase: four words", T("passphrase: correct horse battery staple"), ["correct horse battery staple"]),
    hides!("mw-quoted", "quoted two words", T(r#"password = "two words""#), ["two words"]),
    hides!("mw-to-eol", "to end of line", T("password: hunter 2\nuser: bob"), ["hunter 2"], keeps ["user: bob"]),
    hides!("mw-logfmt-next-pair", "stops at the next pair", T("user=bob password=open sesame 123 ip=10.0.0.1"), ["open sesame 123"], keeps ["user=bob", "ip=10.0.0.1"]),
    hides!("mw-single-quoted", "single quotes", T("password: 'single quoted pass'"), ["single quoted pass"]),
    hides!("mw-semicolon", "to a semicolon", T("secret=my shared phrase; next=1"), ["my shared phrase"], keeps ["next=1"]),
    hides!("mw-yaml", "YAML block", D(r#"{"config": "db:\n  password: multi word value here\n  user: app"}"#), ["multi word value here"], keeps ["user: app"]),
    hides!("mw-json-like", "JSON-ish text", T("{password: hunter two, user: bob}"), ["hunter two"], keeps ["user: bob"]),
    hides!("mw-api-key-words", "API Key: label", T("API Key: ak live 778899"), ["ak live 778899"]),
    hides!("mw-date-of-birth", "Date of Birth: label", T("Date of Birth: 23 July 1984"), ["23 July 1984"]),
    hides!("mw-fat-arrow", "Ruby/PHP =>", T("'password' => 'arrow secret 1'"), ["arrow secret 1"]),
    hides!("mw-escaped-json", "escaped JSON inside text", T(r#"payload: {\"password\":\"escaped pass 8\"}"#), ["escaped pass 8"]),

    hides!("mw-cli-flag", "--password flag", T("psql --host db --password 'cli pass 1' --user app"), ["cli pass 1"], keeps ["--user app"]),
    hides!("mw-cli-flag-bare", "--token flag", T("deploy --token clitok-abc123 --force"), ["clitok-abc123"], keeps ["--force"]),
    keeps!("mw-neg-cli", "ordinary flags", T("ls --color always -la --password-file /etc/pw")),
    keeps!("mw-neg-placeholder", "redacted values", T("password=****** token: [REDACTED] secret=<hidden>")),

    // --- 5. Token families --------------------------------------------------------------
    hides!("tok-openai-proj", "OpenAI project key", T("OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9oPq2rSt5u"), ["sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9oPq2rSt5u"]),
    hides!("tok-openai-legacy", "OpenAI legacy key", T("using sk-abcdefghij0123456789T3BlbkFJabcdefghij0123456789 now"), ["sk-abcdefghij0123456789T3BlbkFJabcdefghij0123456789"]),
    hides!("tok-openai-svcacct", "OpenAI service account key", T("k sk-svcacct-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0Ed"), ["sk-svcacct-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0Ed"]),
    hides!("tok-anthropic", "Anthropic key", T("x-api-key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AA"), ["sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AA"]),
    hides!("tok-google-api", "Google API key", T("https://maps.googleapis.com/x?key=AIzaSyD-EXAMPLEkey_0123456789abcdefghij&v=3"), ["AIzaSyD-EXAMPLEkey_0123456789abcdefghij"]),
    hides!("tok-google-oauth", "Google OAuth access token", T("ya29.a0AfH6SMBx3exampleTokenValue-1234567890_abcdef"), ["ya29.a0AfH6SMBx3exampleTokenValue-1234567890_abcdef"]),
    hides!("tok-gcp-sa-json", "GCP service-account JSON in a string", D(r#"{"sa_json": "{\"type\":\"service_account\",\"client_email\":\"svc@p.iam.gserviceaccount.com\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----\\n\"}"}"#), ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"], keeps ["svc@p.iam.gserviceaccount.com"]),
    hides!("tok-aws-pair", "AWS key id with its secret", T("aws AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
    hides!("tok-aws-asia", "AWS temporary key id", T("key=ASIAY34FZKBOKMUTVV7A,region=us-east-1"), ["ASIAY34FZKBOKMUTVV7A"], keeps ["region=us-east-1"]),
    hides!("tok-slack-bot", "Slack bot token", T("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"), ["xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"]),
    hides!("tok-slack-user", "Slack user token", T("t=xoxp-2222222222-3333333333-4444444444-abcdef0123456789"), ["xoxp-2222222222-3333333333-4444444444-abcdef0123456789"]),
    hides!("tok-slack-app", "Slack app token", T("xapp-1-A0123456789-1234567890123-abcdef0123456789"), ["xapp-1-A0123456789-1234567890123-abcdef0123456789"]),
    hides!("tok-slack-rotating", "Slack rotating token", T("xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMg"), ["xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMg"]),
    hides!("tok-slack-refresh", "Slack refresh token", T("xoxe-1-My0xLTEyMzQ1Njc4OTAx"), ["xoxe-1-My0xLTEyMzQ1Njc4OTAx"]),
    hides!("tok-slack-webhook", "Slack webhook URL", T("post to https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/AbCdEfGhIjKlMnOpQrStUvWx ok"), ["T01ABCDEF/B02GHIJKL/AbCdEfGhIjKlMnOpQrStUvWx"], keeps ["https://hooks.slack.com/services/"]),
    hides!("tok-stripe-live", "Stripe live key", T("sk_live_4eC39HqLyjWDarjtT1zdp7dc"), ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
    hides!("tok-stripe-restricted", "Stripe restricted key", T("rk_live_51H8abcdefghijklmnopQRST"), ["rk_live_51H8abcdefghijklmnopQRST"]),
    hides!("tok-stripe-webhook", "Stripe webhook secret", T("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
    hides!("tok-stripe-test", "Stripe test key", T("sk_test_51ABCDEFghijklmnop0123"), ["sk_test_51ABCDEFghijklmnop0123"]),
    hides!("tok-github", "GitHub tokens", T("ghp_16C7e42F292c6912E7710c838347Ae178B4a gho_16C7e42F292c6912E7710c838347Ae178B4b ghu_16C7e42F292c6912E7710c838347Ae178B4c ghs_16C7e42F292c6912E7710c838347Ae178B4d ghr_16C7e42F292c6912E7710c838347Ae178B4e"), ["ghp_16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7e42F292c6912E7710c838347Ae178B4b", "ghu_16C7e42F292c6912E7710c838347Ae178B4c", "ghs_16C7e42F292c6912E7710c838347Ae178B4d", "ghr_16C7e42F292c6912E7710c838347Ae178B4e"]),
    hides!("tok-github-pat", "GitHub fine-grained PAT", T("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"), ["github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"]),
    hides!("tok-gitlab", "GitLab PAT", T("PRIVATE-TOKEN glpat-AbCdEf1234567890XyZw"), ["glpat-AbCdEf1234567890XyZw"]),
    hides!("tok-npm", "npm token", T("//registry.npmjs.org/:_authToken=npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"), ["npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"]),
    hides!("tok-pypi", "PyPI token", T("pypi-AgEIcHlwaS5vcmcCJGE0ZGM2YTQzLTM0ZTMtNGY4Yy04OWU5LTQ0MzY5OTMzZmQ2YwACJXsi"), ["pypi-AgEIcHlwaS5vcmcCJGE0ZGM2YTQzLTM0ZTMtNGY4Yy04OWU5LTQ0MzY5OTMzZmQ2YwACJXsi"]),
    hides!("tok-sendgrid", "SendGrid key", T("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"), ["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"]),
    hides!("tok-twilio", "Twilio API key", T("twilio SK0123456789abcdef0123456789abcdef"), ["SK0123456789abcdef0123456789abcdef"]),
    hides!("tok-mailgun", "Mailgun key", T("api:key-3ax6xnjp29jd6fds4gc373sgvjxteol0"), ["key-3ax6xnjp29jd6fds4gc373sgvjxteol0"]),
    hides!("tok-shopify", "Shopify tokens", T("shpat_0123456789abcdef0123456789abcdef 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"), ["shpat_0123456789abcdef0123456789abcdef", "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"]),
    hides!("tok-huggingface", "Hugging Face token", T("HF_TOKEN hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"), ["hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"]),
    hides!("tok-digitalocean", "DigitalOcean token", T("dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), ["dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]),
    hides!("tok-heroku", "Heroku token", T("HRKU-AAbcdEFGhijKLMnopQRStuvWXyz0123456789_-abcdefghijklmnop"), ["HRKU-AAbcdEFGhijKLMnopQRStuvWXyz0123456789_-abcdefghijklmnop"]),
    hides!("tok-discord-webhook", "Discord webhook URL", T("https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEf"), ["123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEf"]),
    hides!("tok-telegram", "Telegram bot token", T("bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0 started"), ["123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"]),
    hides!("tok-telegram-url", "Telegram API URL", T("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0/getMe"), ["123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"]),
    hides!("tok-azure-storage", "Azure storage connection string", T("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net"), ["Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="], keeps ["AccountName=acct", "EndpointSuffix=core.windows.net"]),
    hides!("tok-azure-servicebus", "Azure Service Bus SharedAccessKey", T("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=abcDEF123ghiJKL456mnoPQR789stuVWX0yz1234="), ["abcDEF123ghiJKL456mnoPQR789stuVWX0yz1234="], keeps ["RootManageSharedAccessKey"]),
    hides!("tok-azure-sas", "Azure SAS sig", T("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig=AbCdEf%2BgHiJkLmNoP%3D&se=2030"), ["AbCdEf%2BgHiJkLmNoP%3D"]),
    hides!("tok-azure-ad-secret", "Azure AD client secret", T("client secret Abc8Q~AbCdEfGhIjKlMnOpQrStUvWxYz01234567"), ["Abc8Q~AbCdEfGhIjKlMnOpQrStUvWxYz01234567"]),
    hides!("tok-ado", "ADO.NET Password with a space", T("Server=tcp:db.example.net,1433;Database=app;User ID=sa;Password=P@ss w0rd!;Encrypt=true"), ["P@ss w0rd!"], keeps ["Encrypt=true"]),
    hides!("tok-odbc-pwd", "ODBC Pwd", T("Driver={ODBC Driver 18};Server=db;Uid=app;Pwd=odbc-secret-11;"), ["odbc-secret-11"]),
    hides!("tok-jdbc-sqlserver", "JDBC SQL Server", T("jdbc:sqlserver://db:1433;databaseName=app;user=sa;password=jdbc-secret-22;"), ["jdbc-secret-22"]),
    hides!("tok-jdbc-mysql", "JDBC MySQL", T("jdbc:mysql://db:3306/app?user=app&password=mysql-secret-33"), ["mysql-secret-33"]),
    hides!("tok-postgres-url", "Postgres URL", T("DATABASE_URL=postgres://app:pg-url-secret@db:5432/app"), ["pg-url-secret"], keeps ["@db:5432/app"]),
    hides!("tok-mongodb-url", "MongoDB SRV URL", T("mongodb+srv://admin:mongo-secret-44@cluster0.example.net/db"), ["mongo-secret-44"]),
    hides!("tok-redis-url", "Redis URL without user", T("redis://:redis-secret-55@cache:6379/0"), ["redis-secret-55"]),
    hides!("tok-amqp-url", "AMQP URL", T("amqp://guest:rabbit-secret-66@mq:5672/"), ["rabbit-secret-66"]),
    hides!("tok-basic", "Basic credentials", T("sent Basic YWRtaW46c3VwZXJzZWNyZXQ= upstream"), ["YWRtaW46c3VwZXJzZWNyZXQ="]),
    hides!("tok-bearer", "Bearer header in curl", T("curl -H 'Authorization: Bearer abc.def.ghi-123456' https://x"), ["abc.def.ghi-123456"]),
    hides!("tok-jwt", "JWT", T("id_token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"), ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"]),
    hides!("tok-pem-rsa", "RSA PEM", T("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----"), ["MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo"]),
    hides!("tok-pem-ec", "EC PEM", T("key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5C\n-----END EC PRIVATE KEY-----\n"), ["MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5C"]),
    hides!("tok-pem-dsa", "DSA PEM", T("-----BEGIN DSA PRIVATE KEY-----\nMIIBuwIBAAKBgQDsdsaexamplebody0123\n-----END DSA PRIVATE KEY-----"), ["MIIBuwIBAAKBgQDsdsaexamplebody0123"]),
    hides!("tok-pem-encrypted", "ENCRYPTED PEM", T("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n-----END ENCRYPTED PRIVATE KEY-----"), ["MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq"]),
    hides!("tok-pem-openssh", "OpenSSH key", T("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"), ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"]),
    hides!("tok-pem-pgp", "PGP private key block", T("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0example0PGPbody1234567890\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----"), ["lQOYBF0example0PGPbody1234567890"]),
    hides!("tok-pem-truncated", "truncated PEM in JSON text", T(r#"{"k": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw", "n": 1}"#), ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"]),
    hides!("tok-pem-escaped", "PEM with escaped newlines", T(r"key=-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAescapedbody987654\n-----END RSA PRIVATE KEY-----\n"), ["MIIEowIBAAKCAQEAescapedbody987654"]),
    hides!("tok-pem-proc-type", "encrypted legacy PEM headers", T("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5A1B2C3D\n\nhexbodyAAAA1111BBBB2222"), ["hexbodyAAAA1111BBBB2222"]),
    hides!("tok-putty", "PuTTY private key", T("PuTTY-User-Key-File-2: ssh-rsa\nPublic-Lines: 1\nAAAAB3NzaC1yc2E\nPrivate-Lines: 1\nAAABAQCputtyprivatebody00\nPrivate-MAC: 0123abcd"), ["AAABAQCputtyprivatebody00"]),
    hides!("tok-google-client-secret", "Google OAuth client secret", T("GOCSPX-AbCdEfGhIjKlMnOpQrStUvWxYz12"), ["GOCSPX-AbCdEfGhIjKlMnOpQrStUvWxYz12"]),
    hides!("tok-slack-client", "Slack client token and cookie", T("xoxc-1234567890-abcdefABCDEF xoxd-AbCdEf1234%2Bxyz"), ["xoxc-1234567890-abcdefABCDEF", "xoxd-AbCdEf1234"]),
    hides!("tok-shopify-alnum", "Shopify token, non-hex", T("shpat_AbCdEfGhIjKlMnOpQrStUvWx1234"), ["shpat_AbCdEfGhIjKlMnOpQrStUvWx1234"]),
    hides!("tok-in-url-path", "token in a URL path", T("/hook/ghp_16C7e42F292c6912E7710c838347Ae178B4a?a=1"), ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"]),
    keeps!("tok-neg-sk-words", "sk- inside words", T("task-list risk-free desk-lamp-2000 sk-learn")),
    keeps!("tok-neg-short", "short prefixed strings", T("sk_live_short pk_live_4eC39HqLyjWDarjtT1zdp7dc ghp_abc")),
    keeps!("tok-neg-public-pem", "public keys and certificates", T("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")),
    keeps!("tok-neg-prose", "auth prose", T("Bearer tokens are used; basic authentication failed for AKIA keys")),
    keeps!("tok-neg-base64-image", "base64 image", T("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")),
    keeps!("tok-neg-url-no-password", "URLs without passwords", T("https://user@example.com:8443/path?q=1 and https://host:8080/x")),

    // --- 6. Card numbers ----------------------------------------------------------------
    hides!("card-visa", "Visa", T("paid with 4111111111111111, thanks"), ["4111111111111111"]),
    hides!("card-visa-13", "Visa 13 digits", T("old card 4222222222222"), ["4222222222222"]),
    hides!("card-visa-19", "Visa 19 digits", T("card 4432950259905878115"), ["4432950259905878115"]),
    hides!("card-mastercard", "Mastercard", T("5555 5555 5555 4444"), ["5555 5555 5555 4444"]),
    hides!("card-mastercard-2", "Mastercard 2-series", T("mc 2223003122003222 and 2720950446600166"), ["2223003122003222", "2720950446600166"]),
    hides!("card-amex", "Amex 4-6-5", T("amex 3782 822463 10005"), ["3782 822463 10005"]),
    hides!("card-discover", "Discover", T("6011111111111117 / 6580063943699192 / 6444906068157089"), ["6011111111111117", "6580063943699192", "6444906068157089"]),
    hides!("card-diners", "Diners 14", T("diners 30569309025904 36319426083400"), ["30569309025904", "36319426083400"]),
    hides!("card-jcb", "JCB", T("jcb 3530111333300000 3541822542821167"), ["3530111333300000", "3541822542821167"]),
    hides!("card-unionpay", "UnionPay 16 and 19", T("cup 6209281590139624 6212538885393363387"), ["6209281590139624", "6212538885393363387"]),
    hides!("card-maestro", "Maestro", T("maestro 6759649826438453 and 630406232010983263"), ["6759649826438453", "630406232010983263"]),
    hides!("card-maestro-12", "Maestro 12 digits in groups", T("maestro 5018 8341 7047"), ["5018 8341 7047"]),
    hides!("card-mir", "Mir", T("mir 2201836450749528 2204046557210141561"), ["2201836450749528", "2204046557210141561"]),
    hides!("card-dashes", "dashes", T("(4111-1111-1111-1111)"), ["4111-1111-1111-1111"]),
    hides!("card-dots", "dots", T("card 4111.1111.1111.1111 exp"), ["4111.1111.1111.1111"]),
    hides!("card-json-number", "JSON number", D(r#"{"amount": 12, "stored": 4111111111111111}"#), ["4111111111111111"], keeps ["12"]),
    hides!("card-in-query", "in a query string", T("/pay?pan=5555555555554444&amt=5"), ["5555555555554444"]),
    hides!("card-troy", "Troy", T("troy 9792027390000954"), ["9792027390000954"]),
    keeps!("card-neg-luhn", "fails Luhn", T("4111111111111112")),
    keeps!("card-neg-imei", "IMEIs (Luhn-valid, 15 digits)", T("imei 490154203237518 356938035643809")),
    keeps!("card-neg-no-iin", "Luhn-valid without a card IIN", T("order 1234567890123452 ref 7542041915379600 9586561165836374 182730842823843")),
    keeps!("card-neg-aws-account", "12-digit account ids (Luhn-valid)", T("account 532667000949 and 604145210984")),
    keeps!("card-neg-epoch", "epoch milliseconds", T("at 1700000000004 and 1700000000000")),
    keeps!("card-neg-glued", "digits glued to letters", T("a4111111111111111 4111111111111111b")),
    keeps!("card-neg-decimal", "decimal and version numbers", T("v4.111.1111.1111 ratio 4111.5 build 5.4.1.2")),
    keeps!("card-neg-mixed-separators", "mixed separators", T("4111 1111-1111.1111")),

    // --- 6b. Other numeric PII ----------------------------------------------------------
    hides!("pii-iban", "IBAN compact", T("refund to DE89370400440532013000 today"), ["DE89370400440532013000"]),
    hides!("pii-iban-grouped", "IBAN in groups", T("IBAN GB82 WEST 1234 5698 7654 32."), ["GB82 WEST 1234 5698 7654 32"]),
    hides!("pii-ssn", "SSN in text", T("ssn on file 219-09-9999 verified"), ["219-09-9999"]),
    keeps!("pii-neg-iban-checksum", "IBAN with a bad checksum", T("GB82WEST12345698765431")),
    keeps!("pii-neg-ssn-like", "invalid SSN areas and dates", T("000-12-3456 666-12-3456 2024-01-15 123-456-7890")),

    // --- 7. Every string field ----------------------------------------------------------
    hides!("field-session-id", "session_id holding a JWT", F("session_id", "eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJhYmMifQ.c2lnbmF0dXJlMTIzNDU2Nzg5MA"), ["eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJhYmMifQ.c2lnbmF0dXJlMTIzNDU2Nzg5MA"]),
    hides!("field-api-key-id", "api_key_id holding a key", F("api_key_id", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"), ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
    hides!("field-user-id", "user_id holding a card", F("user_id", "4111111111111111"), ["4111111111111111"]),
    hides!("field-organization-id", "organization_id with a token", F("organization_id", "org token=org-tok-123456"), ["org-tok-123456"]),
    hides!("field-request-id", "request_id holding a PAT", F("request_id", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"), ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"]),
    hides!("field-source", "source with a DSN", F("source", "postgres://svc:src-secret-1@db/x"), ["src-secret-1"]),
    hides!("field-resource", "resource with a query token", F("resource", "/reset?token=res-tok-123456&x=1"), ["res-tok-123456"], keeps ["/reset?token=", "&x=1"]),
    hides!("field-resource-type", "resource_type with a card", F("resource_type", "card 4111 1111 1111 1111"), ["4111 1111 1111 1111"]),
    hides!("field-reason", "reason with a password", F("reason", "login failed password=reason-secret-7"), ["reason-secret-7"]),
    hides!("field-error-code", "error_code with a Slack token", F("error_code", "E_AUTH xoxb-123456789012-abcdefghijkl"), ["xoxb-123456789012-abcdefghijkl"]),
    hides!("field-user-agent", "user_agent with a bearer", F("user_agent", "curl/8 Authorization: Bearer ua-token-123456789"), ["ua-token-123456789"]),
    hides!("field-geo-city", "geo.city with a token", F("geo.city", "Paris token=city-tok-998877"), ["city-tok-998877"]),
    keeps!("field-neg-user-id", "plain user id", F("user_id", "alice")),
    keeps!("field-neg-user-id-dash", "dashed user id", F("user_id", "u-123")),
    keeps!("field-neg-uuid", "UUID organization", F("organization_id", "550e8400-e29b-41d4-a716-446655440000")),
    keeps!("field-neg-email", "email user id", F("user_id", "bob@example.com")),
    keeps!("field-neg-session", "ordinary session id", F("session_id", "sess-0000a1b2")),
    keeps!("field-neg-resource", "ordinary resource path", F("resource", "/api/v1/accounts/42/profile")),
    keeps!("field-neg-reason", "prose about passwords", F("reason", "password reset requested")),
    keeps!("field-neg-user-agent", "browser user agent", F("user_agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")),
    keeps!("field-neg-city", "ordinary city", F("geo.city", "São Paulo")),
    hides!("details-array-strings", "strings inside arrays", D(r#"{"list": ["ok", "token=arr-tok-123456"]}"#), ["arr-tok-123456"], keeps ["ok"]),
    hides!("details-object-key", "object keys", D(r#"{"sessions": {"ghp_16C7e42F292c6912E7710c838347Ae178B4a": "active"}}"#), ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"], keeps ["active"]),
    hides!("details-escaped-json", "escaped JSON body", D(r#"{"body": "{\"password\":\"json-in-str-1\",\"user\":\"bob\"}"}"#), ["json-in-str-1"], keeps ["bob"]),
    hides!("details-escaped-json-pairs", "pairs in a JSON string", D(r#"{"body": "[[\"password\",\"pairs-in-str-2\"]]"}"#), ["pairs-in-str-2"]),
    hides!("details-double-escaped", "JSON string in a JSON string", D(r#"{"outer": "{\"inner\": \"{\\\"api_key\\\": \\\"double-nested-7\\\"}\"}"}"#), ["double-nested-7"]),
    hides!("details-query", "query string", D(r#"{"url": "/login?user=bob&password=qs-secret-3&token=qs-token-4"}"#), ["qs-secret-3", "qs-token-4"], keeps ["user=bob"]),
    hides!("details-url-encoded-json", "URL-encoded JSON in a query", D(r#"{"url": "/cb?data=%7B%22password%22%3A%22pct-secret-5%22%7D"}"#), ["pct-secret-5"]),
    hides!("details-url-encoded-key", "URL-encoded pair", D(r#"{"q": "a%3D1%26password%3Dpct-secret-6%26b%3D2"}"#), ["pct-secret-6"]),
    hides!("details-form-body", "form body", D(r#"{"form": "username=bob&password=p%40ss-form-6"}"#), ["p%40ss-form-6"]),
    hides!("details-double-percent", "double percent-encoding", D(r#"{"q": "next=%252Fx%253Ftoken%253Dpct-double-9"}"#), ["pct-double-9"]),
    hides!("details-card-in-log", "card in a logged body", D(r#"{"log": "request body={\"card\":\"4111111111111111\"}"}"#), ["4111111111111111"]),
    keeps!("details-neg-numbers", "ordinary numbers", D(r#"{"amount_cents": 1999, "ratio": 0.5, "count": 3}"#)),
    keeps!("details-neg-json-string", "JSON string without secrets", D(r#"{"body": "{\"user\":\"bob\",\"ok\":true}"}"#)),
    keeps!("details-neg-encoded", "percent-encoded text without secrets", D(r#"{"url": "/search?q=hello%20world&page=2"}"#)),

    // --- 8. Over-masking ----------------------------------------------------------------
    keeps!("neg-uuid", "UUIDs", T("550e8400-e29b-41d4-a716-446655440000 0190a2b4-7c3d-7e5f-8a9b-0c1d2e3f4a5b")),
    keeps!("neg-sha256", "SHA-256 digest", T("sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")),
    keeps!("neg-sha1", "SHA-1 and git shas", T("commit 11f6ad8ec52a2984abaafd7c3b516503785c2072 (3a183cb)")),
    keeps!("neg-timestamps", "ISO timestamps", T("2026-01-02T03:04:05.123Z to 2026-01-02T03:04:05+01:00")),
    keeps!("neg-ips", "IPs", T("10.0.0.1 2001:db8::1 [::1]:443 192.168.1.100:8080")),
    keeps!("neg-sentence-password", "sentences with password", T("Password reset link sent to the user; the password was not changed")),
    keeps!("neg-sentence-token", "sentences with token", T("The token has expired. Secret santa event scheduled.")),
    keeps!("neg-time-pairs", "time and ratio pairs", T("time: 12:30:45 ratio=3:1 user=bob&page=2")),
    keeps!("neg-benign-pairs", "benign pairs", T("token_type=bearer password_length=12 pin_count=3 password=")),
    keeps!("neg-paths", "paths and user agents", T("/api/v1/accounts/12345/profile Mozilla/5.0 (X11; Linux x86_64)")),
    keeps!("neg-phone", "phone numbers", T("+1 415 555 2671 / +33 1 42 68 53 00")),
    keeps!("neg-german", "Passwort in prose", T("Passwort vergessen? Kennwort zurücksetzen")),
    keeps!("neg-emoji", "non-ASCII text", T("日本語のテキスト 😀 €:€=€ ü://ü@ü")),
    keeps!("neg-pseudonym", "already masked", T("password=[masked:field:0123456789ab]\ncard [masked:card:abcdef012345]")),
    hides!("forged-pseudonym", "a forged pseudonym before the secret", T("password=[masked:field:0123456789ab] realsecret1"), ["realsecret1"]),
    keeps!("neg-details-mixed", "a W1-like details object", D(r#"{"method": "password", "mfa": true, "record_count": 3, "sensitive": false, "required_role": "editor", "client_version": "4.2.1"}"#)),

    // --- 9. Error paths -----------------------------------------------------------------
    hides!("err-unknown-password-field", "unknown top-level password field", E(r#"{"category": "a", "action": "b", "password": "err-secret-1"}"#), ["err-secret-1"]),
    hides!("err-unknown-jwt-key", "unknown field named by a JWT", E(r#"{"category": "a", "action": "b", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlYWJjZGVm": 1}"#), ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlYWJjZGVm"]),
    hides!("err-geo-key", "unknown geo field named by a token", E(r#"{"category": "a", "action": "b", "geo": {"ghp_16C7e42F292c6912E7710c838347Ae178B4a": 1}}"#), ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"]),
    hides!("err-bad-timestamp", "invalid timestamp holding a key", E(r#"{"category": "a", "action": "b", "timestamp": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}"#), ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
    hides!("err-bad-ip", "invalid ip holding a password", E(r#"{"category": "a", "action": "b", "ip": "password=err-ip-secret"}"#), ["err-ip-secret"]),
    hides!("err-bad-country", "invalid country", E(r#"{"category": "a", "action": "b", "geo": {"country": "token=err-geo-secret"}}"#), ["err-geo-secret"]),
    hides!("err-bad-severity", "invalid severity", E(r#"{"category": "a", "action": "b", "severity": "xoxb-123456789012-abcdefghijkl"}"#), ["xoxb-123456789012-abcdefghijkl"]),
];

/// `s` with every pseudonym removed (a leak check must not trip on pseudonym hex).
fn without_pseudonyms(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(n) = pseudonym_len(&b[i..]) {
            i += n;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secret fragments whose presence in `out` is a leak: every 6-character window, or the
/// whole secret when shorter.
fn leaks(out: &str, secret: &str) -> Option<String> {
    let visible = without_pseudonyms(out);
    let chars: Vec<char> = secret.chars().collect();
    chars.windows(6.min(chars.len())).map(|w| w.iter().collect::<String>()).find(|frag| visible.contains(frag.as_str()))
}

fn masker() -> Masker {
    Masker::new(b"corpus-key")
}

/// Runs one case: its output text, whether the output equals the input, and what a second
/// masking of the output changed (masking must be idempotent).
fn run(case: &Case) -> (String, bool, Option<String>) {
    let m = masker();
    match case.input {
        D(json) => {
            let original: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", case.id));
            let mut v = original.clone();
            m.mask_value(&mut v);
            let mut again = v.clone();
            let idem = (m.mask_value(&mut again) > 0).then(|| again.to_string());
            (v.to_string(), v == original, idem)
        }
        T(text) => match m.mask_str(text) {
            None => (text.to_owned(), true, None),
            Some(out) => {
                let idem = m.mask_str(&out);
                (out, false, idem)
            }
        },
        F(field, value) => {
            let mut event = serde_json::json!({"category": "auth", "action": "login"});
            match field.strip_prefix("geo.") {
                Some(k) => event["geo"] = serde_json::json!({ k: value }),
                None => event[field] = Value::from(value),
            }
            let ev =
                validate_batch(vec![event], &m).unwrap_or_else(|p| panic!("{}: refused: {p:?}", case.id)).remove(0);
            let stored = match field.strip_prefix("geo.") {
                Some(k) => ev.fields.to_map()["geo"][k].as_str().map(str::to_owned),
                None => ev.fields.to_map()[field].as_str().map(str::to_owned),
            };
            let stored = stored.unwrap_or_else(|| panic!("{}: {field} not stored", case.id));
            let idem = m.mask_str(&stored);
            let same = stored == value;
            (stored, same, idem)
        }
        E(json) => {
            let event: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", case.id));
            match validate_batch(vec![event], &m) {
                Ok(events) => (Value::Object(events[0].fields.to_map()).to_string(), false, None),
                Err(problems) => (serde_json::to_string(&problems).unwrap_or_default(), false, None),
            }
        }
    }
}

#[test]
fn corpus_has_enough_cases_of_both_kinds() {
    let positive = CASES.iter().filter(|c| matches!(c.expect, Expect::Hides(..))).count();
    let negative = CASES.len() - positive;
    assert!(CASES.len() >= 150, "{} cases", CASES.len());
    assert!(positive >= 90 && negative >= 50, "{positive} positive, {negative} negative");
    let mut ids: Vec<&str> = CASES.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "case ids are unique");
}

#[test]
fn corpus_cases_hold() {
    let mut failures = Vec::new();
    for case in CASES {
        let (out, same, idem) = run(case);
        if let Some(again) = idem {
            failures.push(format!("{} ({}): masking {out} again gives {again}", case.id, case.what));
        }
        match case.expect {
            Expect::Hides(secrets, kept) => {
                for secret in secrets {
                    if let Some(frag) = leaks(&out, secret) {
                        failures.push(format!("{} ({}): leaks {frag:?} of {secret:?} in {out}", case.id, case.what));
                    }
                }
                for k in kept {
                    if !out.contains(k) {
                        failures.push(format!("{} ({}): lost {k:?} in {out}", case.id, case.what));
                    }
                }
            }
            Expect::Keeps => {
                if !same {
                    failures.push(format!("{} ({}): changed to {out}", case.id, case.what));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases fail:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}
