//! Routing: the path picks a resource, the method an action.
//!
//! | method | path | |
//! |---|---|---|
//! | POST, GET | `/api/sync/schedules` | create, list |
//! | GET, PUT, DELETE | `/api/sync/schedules/{id}` | read, partial update, delete |
//! | POST | `/api/sync/schedules/preview` | next fire times, nothing stored |
//! | POST, GET | `/api/connections` | create, list |
//! | GET, PUT, DELETE | `/api/connections/{id}` | read, update, delete (`?cascade=true`) |
//! | GET | `/api/connections/{id}/events` | the connection's webhook event log |
//! | POST, GET | `/api/flows` | create, list |
//! | GET, PUT, DELETE | `/api/flows/{id}` | read, update, delete |
//! | GET | `/api/sync/runs` | run history (`schedule_id`, `flow_id`, `connection_id`, `status`, `limit`, `next`) |
//! | GET | `/api/sync/runs/{id}` | one run |
//! | GET | `/api/sync/failures` | a connection's records that keep failing (`connection_id`, `entity_type`, `limit`, `next`) |

mod connections;
mod failures;
mod flows;
mod runs;
mod schedules;

use lambda_http::{Body, Request, Response};

use crate::error::ApiError;
use crate::request::tenant;
use crate::App;

pub async fn dispatch(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(req, &app.settings.tenant_claim)?;
    let path = req.uri().path().trim_end_matches('/');
    if let Some(rest) = path.strip_prefix(schedules::BASE) {
        return schedules::dispatch(app, &tenant, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix(connections::BASE) {
        return connections::dispatch(app, &tenant, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix(flows::BASE) {
        return flows::dispatch(app, &tenant, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix(runs::BASE) {
        return runs::dispatch(app, &tenant, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix(failures::BASE) {
        return failures::dispatch(app, &tenant, req, rest).await;
    }
    Err(ApiError::not_found(format!(
        "no route for {}",
        req.uri().path()
    )))
}

/// A path remainder after a collection's base: `""`, or `/{segment}[/{sub}]`.
pub(crate) fn segments(rest: &str) -> Option<Vec<&str>> {
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
    (parts.len() <= 2 && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}
