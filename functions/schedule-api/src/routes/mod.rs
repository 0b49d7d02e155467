//! Routing: [`sync_api::routes::API_ROUTES`] (the one table of the API's routes, which the
//! local gateway and the template check read too) picks the endpoint; this module calls its
//! handler. A path no route has is a 404; a method the path does not take, a 405 naming
//! those it does.

mod alerts;
mod connections;
mod failures;
mod flows;
mod runs;
mod schedules;

use lambda_http::{Body, Request, RequestExt, Response};
use std::str::FromStr;
use sync_api::routes::{api_route, Endpoint, Miss};

use crate::error::ApiError;
use crate::request::tenant;
use crate::App;

pub async fn dispatch(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(req, &app.settings.tenant_claim)?;
    let (route, params) = match api_route(req.method().as_str(), req.uri().path()) {
        Ok(found) => found,
        Err(Miss::NotFound) => {
            return Err(ApiError::not_found(format!(
                "no route for {}",
                req.uri().path()
            )))
        }
        Err(Miss::MethodNotAllowed(allowed)) => {
            return Err(ApiError::method_not_allowed(allowed.join(", ")))
        }
    };
    // An id that does not parse cannot name anything of the tenant's: simply not found.
    fn id<T: FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
        raw.parse()
            .map_err(|_| ApiError::not_found(format!("no {what} with that id")))
    }
    let raw = params.get("id");
    let t = &tenant;
    match route.endpoint {
        Endpoint::ScheduleList => schedules::list(app, t).await,
        Endpoint::ScheduleCreate => schedules::create(app, t, req).await,
        Endpoint::SchedulePreview => schedules::preview(app, req),
        Endpoint::ScheduleGet => schedules::get(app, t, id(raw, "schedule")?).await,
        Endpoint::ScheduleUpdate => schedules::update(app, t, id(raw, "schedule")?, req).await,
        Endpoint::ScheduleDelete => schedules::delete(app, t, id(raw, "schedule")?).await,
        Endpoint::ScheduleRun => runs::run_schedule(app, t, id(raw, "schedule")?).await,
        Endpoint::SweeperStatus => runs::sweeper(app).await,
        Endpoint::ScheduleAudit => schedules::audit(app, t, id(raw, "schedule")?, req).await,
        Endpoint::ConnectionList => connections::list(app, t, req).await,
        Endpoint::ConnectionCreate => connections::create(app, t, req).await,
        Endpoint::ConnectionGet => connections::get(app, t, id(raw, "connection")?, req).await,
        Endpoint::ConnectionUpdate => {
            connections::update(app, t, id(raw, "connection")?, req).await
        }
        Endpoint::ConnectionDelete => {
            connections::delete(app, t, id(raw, "connection")?, req).await
        }
        Endpoint::ConnectionEvents => {
            connections::events(app, t, id(raw, "connection")?, req).await
        }
        Endpoint::ConnectionStreams => connections::streams(app, t, id(raw, "connection")?).await,
        Endpoint::FlowList => flows::list(app, t).await,
        Endpoint::FlowCreate => flows::create(app, t, req).await,
        Endpoint::FlowGet => flows::get(app, t, id(raw, "flow")?).await,
        Endpoint::FlowUpdate => flows::update(app, t, id(raw, "flow")?, req).await,
        Endpoint::FlowDelete => flows::delete(app, t, id(raw, "flow")?).await,
        Endpoint::RunList => runs::list(app, t, req).await,
        Endpoint::RunGet => runs::get(app, t, raw).await,
        Endpoint::RunRetry => runs::retry(app, t, raw).await,
        Endpoint::RunCancel => runs::cancel(app, t, raw).await,
        Endpoint::SyncTrigger => runs::trigger(app, t, req).await,
        Endpoint::SyncResync => runs::resync(app, t, req).await,
        Endpoint::FailureList => failures::list(app, t, req).await,
        Endpoint::FailureRetry => failures::retry(app, t, req).await,
        Endpoint::AlertList => alerts::list(app, t, req).await,
        Endpoint::AlertAck => alerts::ack(app, t, raw, req).await,
        Endpoint::AlertDestinationList => alerts::destinations(app, t).await,
        Endpoint::AlertDestinationCreate => alerts::add_destination(app, t, req).await,
        Endpoint::AlertDestinationDelete => alerts::remove_destination(app, t, raw).await,
        Endpoint::OpenApi => Ok(crate::view::json_response(
            lambda_http::http::StatusCode::OK,
            &sync_api::openapi::document(),
        )),
    }
}

/// The request's JSON body as its fields: only those `allowed`, none of those `immutable`.
fn body(
    app: &App,
    req: &Request,
    allowed: &[&str],
    immutable: &[&str],
) -> Result<crate::request::Fields, ApiError> {
    crate::request::Fields::new(
        crate::request::json_object(req, app.settings.max_body_bytes)?,
        allowed,
        immutable,
    )
}

/// A query parameter parsed with `FromStr`, its error naming the parameter.
pub(super) fn query<T: std::str::FromStr>(
    req: &Request,
    name: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    match req
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
    {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid_field(name, format!("{name} must be {what}"))),
    }
}
