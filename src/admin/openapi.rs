//! The OpenAPI 3.1 description of the webhooks API, generated from the handlers and types
//! (utoipa), served at `GET /api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::problem::Problem;
use super::webhooks::{self, actions, body, view};

/// The description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookline admin API",
        description = "Webhook subscriptions of hookline, the router from security events in Kafka to webhooks. Every endpoint takes `Authorization: Bearer <token>` when admin tokens are configured (`GET` the read or write token; everything else the write token). Errors are RFC 7807 problem details.",
        license(name = "Apache-2.0")
    ),
    paths(
        webhooks::list,
        webhooks::create,
        webhooks::get_one,
        webhooks::replace,
        webhooks::patch,
        webhooks::delete,
        actions::pause,
        actions::resume,
        actions::test,
        actions::rotate,
    ),
    components(schemas(
        Problem,
        body::WebhookInput,
        body::WebhookPatch,
        view::Webhook,
        view::WebhookResponse,
        view::WebhookList,
        view::WebhookCreated,
        view::WebhookCreatedResponse,
        view::Rotated,
        view::RotatedResponse,
        view::TestResult,
        view::TestResponse,
        view::Meta,
        view::ListMeta,
        view::Status,
        view::AuthType,
        view::Source,
    )),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags((name = "Webhooks", description = "Subscriptions: where events go, and in what state"))
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_openapi_3_1_with_every_operation() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/webhooks",
            "/api/v1/webhooks/{id}",
            "/api/v1/webhooks/{id}/pause",
            "/api/v1/webhooks/{id}/resume",
            "/api/v1/webhooks/{id}/test",
            "/api/v1/webhooks/{id}/secret/rotate",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let required = &doc["components"]["schemas"]["WebhookInput"]["required"];
        for f in ["name", "url", "authType"] {
            assert!(
                required.as_array().unwrap().contains(&serde_json::json!(f)),
                "{required}"
            );
        }
    }
}
