//! The one outbound HTTP client builder: every request Vigil makes (receivers, the anchor
//! URL) goes through a client with a timeout, no redirects (a receiver cannot bounce a
//! signed payload or a token elsewhere) and a `vigil/<version>` user agent.

use std::time::Duration;

/// The HTTP client settings every outbound request uses: timeout, no redirects, a user agent.
pub fn http_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
}
