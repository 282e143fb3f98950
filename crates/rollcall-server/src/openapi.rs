//! The OpenAPI 3.1 document of the REST API, generated from the handlers' annotations and the
//! request/response types in [`crate::http`] (utoipa), served at `/openapi.json` and kept in
//! `docs/openapi.json` (a test fails when the two differ; `UPDATE_OPENAPI=1` rewrites it).

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http;

/// The API description: every REST route with its bodies, answers and security.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rollcall HTTP API",
        description = "Presence status, channel state, login history and REST broadcast of a \
            Rollcall server. When the server verifies tokens, every operation except the health \
            checks needs `Authorization: Bearer <jwt>` or an `apikey` header.",
        license(name = "Apache-2.0")
    ),
    paths(
        http::status,
        http::channel_presence,
        http::sessions,
        http::broadcast,
        http::metrics,
        http::healthz,
        http::readyz,
    ),
    components(schemas(http::ErrorBody, http::RefusedMessage)),
    modifiers(&Security),
    tags(
        (name = "presence", description = "Who is online"),
        (name = "broadcast", description = "Messages to channel subscribers"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub(crate) struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        c.add_security_scheme(
            "apikey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("apikey"))),
        );
        // Supabase's gateway path of the same broadcast operation.
        if let Some(mut item) = doc.paths.paths.get("/api/broadcast").cloned() {
            if let Some(op) = item.post.as_mut() {
                op.operation_id = Some("broadcast_gateway_path".to_string());
            }
            doc.paths
                .paths
                .insert("/realtime/v1/api/broadcast".to_string(), item);
        }
    }
}

/// The document as pretty JSON (built once).
pub(crate) fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"openapi: {e}\"}}"));
        text.push('\n');
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_matches_the_handlers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p rollcall-server --lib openapi`"
        );
        let v: serde_json::Value = serde_json::from_str(generated).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        for p in [
            "/api/presence/status",
            "/api/channels/{topic}/presence",
            "/api/presence/{key}/sessions",
            "/api/broadcast",
            "/realtime/v1/api/broadcast",
            "/readyz",
        ] {
            assert!(v["paths"][p].is_object(), "{p} missing");
        }
    }
}
