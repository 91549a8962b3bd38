//! HTTP edge: the provisioning REST API under `/api/v1` (JSON, operator bearer token),
//! with its OpenAPI document at `/api/v1/openapi.json`. Only this module knows HTTP.

use crate::config::Secret;
use crate::store::SharedDirectory;
use axum::Router;

#[derive(Clone)]
pub struct ApiState {
    pub directory: SharedDirectory,
    pub api_token: Option<Secret>,
}

pub fn router(_state: ApiState) -> Router {
    Router::new()
}
