//! Limits of the REST API: a per-client request rate, the CORS policy and the body timeout.
//!
//! The rate is counted per client address in fixed one-second windows
//! (`http_requests_per_second`); over it the answer is 429 with a `retry-after` header, before
//! any token is verified or body read. Only the current window's counters are kept, so memory
//! is bounded by the number of distinct clients in one second.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::http::ApiError;
use crate::hub::Hub;

/// Per-address request counters of the current one-second window.
#[derive(Debug, Default)]
pub(crate) struct HttpRate {
    window: AtomicU64,
    counts: DashMap<IpAddr, u32>,
}

impl HttpRate {
    /// Counts one request of `ip` in the window `second`; false when it is over `max`.
    pub(crate) fn allow(&self, ip: IpAddr, second: u64, max: u32) -> bool {
        let current = self.window.load(Ordering::Acquire);
        if current != second
            && self
                .window
                .compare_exchange(current, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.counts.clear();
        }
        let mut n = self.counts.entry(ip).or_insert(0);
        *n = n.saturating_add(1);
        *n <= max
    }

    /// Addresses counted in the current window.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.counts.len()
    }
}

/// Middleware: the per-address request rate of the REST routes.
pub(crate) async fn rate_limit(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let ip = crate::listener::peer(&parts).map(|a| a.ip());
    let req = Request::from_parts(parts, body);
    if let Some(ip) = ip {
        let second = hub.now().0 / 1000;
        if !hub
            .http_rate
            .allow(ip, second, hub.cfg.http.requests_per_second)
        {
            hub.metrics.error("http_rate_limited");
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "over http_requests_per_second ({}) from this address",
                    hub.cfg.http.requests_per_second
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
    }
    next.run(req).await
}

/// The CORS layer for `origins` (`*` = any origin); `None` when no origin is configured, so
/// browsers refuse cross-origin calls (the default).
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                HeaderName::from_static("apikey"),
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-client-info"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// Checks a configured origin: `*` or `scheme://host[:port]` with no path.
pub(crate) fn valid_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains('/')
        && HeaderValue::from_str(o).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_per_address_and_resets_each_second() {
        let r = HttpRate::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(r.allow(a, 5, 2));
        assert!(r.allow(a, 5, 2));
        assert!(!r.allow(a, 5, 2));
        assert!(r.allow(b, 5, 2), "another address has its own budget");
        assert!(r.allow(a, 6, 2), "a new second resets");
        assert_eq!(r.tracked(), 1, "old windows are forgotten");
    }

    #[test]
    fn origins_are_checked() {
        assert!(valid_origin("*"));
        assert!(valid_origin("https://app.example.com"));
        assert!(valid_origin("http://localhost:5173"));
        assert!(!valid_origin("app.example.com"));
        assert!(!valid_origin("https://app.example.com/path"));
        assert!(!valid_origin("ftp://x"));
    }
}
