//! The HTTP API's description, kept with the routes: every API module builds its router
//! through [`Documented`], which registers a handler under an [`Endpoint`] (method, path,
//! credential, parameters, body and answer), so the OpenAPI document served at
//! `/api/openapi.json` is made from the same entries the router is — a route cannot exist
//! undocumented, and a documented route cannot be missing.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value, json};

use crate::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, metrics and this document.
    Public,
    /// A caller (API token or OIDC JWT) with one of these roles.
    Roles(&'static [Role]),
    /// An HMAC-SHA256 signature with the source's secret, checked by the handler.
    WebhookSignature,
}

/// A query parameter: name, JSON type and meaning.
pub type QueryParam = (&'static str, &'static str, &'static str);

/// One route of the API.
pub struct Endpoint {
    pub method: &'static str,
    /// The axum path; `{name}` segments are path parameters (strings).
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Whether a success returns a customer's personal data: such calls are counted per
    /// caller (mass-read alarm) and written to the audit log.
    pub personal_data: bool,
    pub query: &'static [QueryParam],
    /// The JSON body's schema, when the route takes one.
    pub body: Option<fn() -> Value>,
    /// The JSON schema of the success answer (`None`: plain text).
    pub answer: Option<fn() -> Value>,
    /// Statuses other than 200 with their meaning.
    pub errors: &'static [(u16, &'static str)],
}

impl Endpoint {
    fn filter(&self) -> MethodFilter {
        match self.method {
            "post" => MethodFilter::POST,
            "put" => MethodFilter::PUT,
            "patch" => MethodFilter::PATCH,
            "delete" => MethodFilter::DELETE,
            _ => MethodFilter::GET,
        }
    }

    /// The names of the path's `{…}` segments.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

/// A router and the endpoints it serves.
pub struct Documented<S> {
    router: Router<S>,
    endpoints: Vec<&'static Endpoint>,
}

impl<S: Clone + Send + Sync + 'static> Default for Documented<S> {
    fn default() -> Self {
        Documented {
            router: Router::new(),
            endpoints: Vec::new(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Documented<S> {
    /// Serves `handler` at the endpoint's method and path, behind the endpoint's access
    /// rule.
    pub fn route<H, T>(mut self, ep: &'static Endpoint, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let guarded = on(ep.filter(), handler).route_layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                crate::auth::authorize(ep, req, next)
            },
        ));
        self.router = self.router.route(ep.path, guarded);
        self.endpoints.push(ep);
        self
    }

    pub fn endpoints(&self) -> &[&'static Endpoint] {
        &self.endpoints
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// Every endpoint the hub can serve (the modules not configured are documented too, so the
/// document does not change with the config).
pub fn all_endpoints() -> Vec<&'static Endpoint> {
    let mut v: Vec<&'static Endpoint> = Vec::new();
    v.extend(crate::http::endpoints());
    v.extend(crate::dlq::api::endpoints());
    v.extend(crate::screening::api::endpoints());
    v.extend(crate::golden::api::endpoints());
    v.extend(crate::pipeline::webhook_source::endpoints());
    v.extend(crate::audit::api::endpoints());
    v.extend(crate::dashboard::endpoints());
    v.extend(crate::quality_api::endpoints());
    v.extend(crate::reconcile::api::endpoints());
    v
}

/// The OpenAPI 3.1 document of `endpoints`.
pub fn openapi(endpoints: &[&'static Endpoint]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for ep in endpoints {
        let mut params: Vec<Value> = ep
            .path_params()
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true,
                        "schema": { "type": "string" } })
            })
            .collect();
        params.extend(ep.query.iter().map(|(name, ty, about)| {
            json!({ "name": name, "in": "query", "required": false,
                    "description": about, "schema": { "type": ty } })
        }));
        let ok = match ep.answer {
            Some(schema) => json!({ "description": "success",
                "content": { "application/json": { "schema": schema() } } }),
            None => json!({ "description": "success",
                "content": { "text/plain": { "schema": { "type": "string" } } } }),
        };
        let mut responses = Map::new();
        responses.insert("200".into(), ok);
        for (status, about) in ep.errors {
            responses.insert(
                status.to_string(),
                json!({ "description": about,
                        "content": { "application/json": { "schema": error_schema() } } }),
            );
        }
        if let Access::Roles(_) = ep.access {
            responses
                .entry("401")
                .or_insert_with(|| json!({ "description": "no valid token" }));
            responses
                .entry("403")
                .or_insert_with(|| json!({ "description": "the caller has none of the roles" }));
        }
        let mut op = json!({
            "operationId": operation_id(ep),
            "tags": [ep.tag],
            "summary": ep.summary,
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = ep.body {
            op["requestBody"] = json!({ "required": true,
                "content": { "application/json": { "schema": body() } } });
        }
        match ep.access {
            Access::Public => op["security"] = json!([]),
            Access::Roles(roles) => {
                op["security"] = json!([{ "bearer": [] }]);
                op["x-roles"] = json!(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>());
            }
            Access::WebhookSignature => op["security"] = json!([{ "webhook_signature": [] }]),
        }
        if ep.personal_data {
            op["x-personal-data"] = json!(true);
        }
        let item = paths
            .entry(ep.path.to_string())
            .or_insert_with(|| json!({}));
        item[ep.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Integration hub API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Operations, compliance and data-steward API of the integration hub. \
                            Answers carry ids and counts; personal data only where a route says so.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer",
                    "description": "an API token ([[auth.tokens]]) or a JWT of an [[auth.oidc]] issuer; \
                                    x-roles names the roles a route admits" },
                "webhook_signature": { "type": "apiKey", "in": "header", "name": "X-Hub-Signature",
                    "description": "HMAC-SHA256 over timestamp and body with the source's secret" },
            },
        },
    })
}

/// `get_api_dlq_id_replay` for `POST /api/dlq/{id}/replay` → `post_api_dlq_id_replay`.
fn operation_id(ep: &Endpoint) -> String {
    let mut id = String::from(ep.method);
    for seg in ep.path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .map(|c| if c == '.' { '_' } else { c }),
        );
    }
    id
}

/// `{"error": "..."}`, the answer of every failed call.
pub fn error_schema() -> Value {
    json!({ "type": "object", "required": ["error"],
            "properties": { "error": { "type": "string" } } })
}

/// An object schema from `(name, type)` pairs, every one required.
pub fn object(fields: &[(&str, Value)]) -> Value {
    let props: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let required: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    json!({ "type": "object", "properties": props, "required": required })
}

/// An array of `items`.
pub fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// A JSON type by name.
pub fn ty(name: &str) -> Value {
    json!({ "type": name })
}

/// An object whose shape the route's documentation describes in words.
pub fn described(about: &str) -> Value {
    json!({ "type": "object", "description": about })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_endpoint_is_in_the_document_once_with_its_path_parameters() {
        let eps = all_endpoints();
        let doc = openapi(&eps);
        let mut seen = BTreeSet::new();
        for ep in &eps {
            assert!(
                seen.insert((ep.method, ep.path)),
                "{} {} registered twice",
                ep.method,
                ep.path
            );
            let op = &doc["paths"][ep.path][ep.method];
            assert!(op.is_object(), "{} {} missing", ep.method, ep.path);
            let documented: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(documented, ep.path_params().collect::<Vec<_>>());
            assert!(!ep.summary.is_empty());
        }
        let ids: BTreeSet<String> = eps.iter().map(|e| operation_id(e)).collect();
        assert_eq!(ids.len(), eps.len(), "operation ids must be unique");
        assert!(doc["paths"]["/api/openapi.json"]["get"].is_object());
        assert!(doc["paths"]["/api/dlq/{id}/replay"]["post"]["requestBody"].is_object());
    }
}
