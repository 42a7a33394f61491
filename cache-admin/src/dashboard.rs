//! `GET /dashboard`: a live page over the admin API, self-contained (no CDN, no chart library:
//! the charts are inline SVG drawn by its own script).
//!
//! The page, its script and its style sheet are compiled in (`include_str!`) and served from
//! three routes, so the page can run under a strict Content-Security-Policy: no inline script
//! or style, no other origin, no framing. The page needs no token: it is static, and its
//! script calls the JSON routes with the bearer token the user types (kept in
//! `sessionStorage`, so it ends with the tab), where every figure is checked as for any client.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

/// Only this origin, for everything; scripts and styles only from the files below (no inline
/// code, no `eval`), no plugins, no `<base>`, no framing (clickjacking the clear button), no
/// form posts (the buttons use `fetch`).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
                   form-action 'none'";

/// `body` with its content type and the headers every dashboard file carries. `no-store`: the
/// assets change with the binary, and a stale script against a newer API would misread it.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (headers, body).into_response()
}

/// The dashboard page.
pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// The page's script.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The page's style sheet.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
