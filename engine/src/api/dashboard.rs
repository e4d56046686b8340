//! The dashboard: a single-page app (plain HTML, CSS and JavaScript in
//! `engine/assets/dashboard/`, embedded in the binary; no CDN, no build step, works offline)
//! served at `/`. It logs in with an API key kept in the tab's `sessionStorage` (never in a
//! URL) and calls the same API as every other client, so what it shows and lets a user do
//! is exactly what the key's role allows. Served with a strict Content-Security-Policy.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const PAGES_JS: &str = include_str!("../../assets/dashboard/pages.js");
const REPORTS_JS: &str = include_str!("../../assets/dashboard/reports.js");
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");
const FAVICON_SVG: &str = include_str!("../../assets/dashboard/favicon.svg");

/// The assets: (path, content type, body).
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", INDEX_HTML),
    ("/index.html", "text/html; charset=utf-8", INDEX_HTML),
    ("/assets/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/assets/pages.js", "text/javascript; charset=utf-8", PAGES_JS),
    ("/assets/reports.js", "text/javascript; charset=utf-8", REPORTS_JS),
    ("/assets/app.css", "text/css; charset=utf-8", APP_CSS),
    // An SVG icon, also at the path browsers ask for by themselves (no 404 in the console).
    ("/assets/favicon.svg", "image/svg+xml", FAVICON_SVG),
    ("/favicon.ico", "image/svg+xml", FAVICON_SVG),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers the asset routes (no key needed: the data behind them needs one).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for &(path, content_type, body) in ASSETS {
        cfg.route(
            path,
            web::get().to(move || async move {
                HttpResponse::Ok()
                    .content_type(content_type)
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
                    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .insert_header((header::REFERRER_POLICY, "no-referrer"))
                    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
                    .body(body)
            }),
        );
    }
}
