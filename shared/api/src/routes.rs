//! Every route of the deployment's HTTP API, in one place.
//!
//! - [`GATEWAY_ROUTES`]: the routes API Gateway knows (the `HttpApi` events of
//!   `template.yaml`), each with the function it invokes and whether the JWT authorizer
//!   guards it. The local gateway routes by them ([`gateway_route`], API Gateway's own
//!   precedence), and `infra/template_check.py` checks `template.yaml` against them (through
//!   `syncctl routes`).
//! - [`API_ROUTES`]: the routes the API function serves behind its `ANY /api/{proxy+}`; its
//!   dispatcher picks the handler by [`api_route`], which answers 404 or 405 (with the
//!   methods the path accepts) for anything else.
//!
//! A new route is one entry here plus its handler.

use std::fmt;

/// A Lambda function behind the HTTP API, by its logical id in `template.yaml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// The JSON API: schedules, connections, flows, runs, failures.
    Api,
    /// Connection setup: the QuickBooks consent flow and platform webhook registration.
    ConnectionSetup,
    /// Webhook intake.
    WebhookIntake,
}

impl Function {
    /// Its resource's logical id in `template.yaml`.
    pub fn logical_id(self) -> &'static str {
        match self {
            Function::Api => "ScheduleApiFunction",
            Function::ConnectionSetup => "ConnectionSetupFunction",
            Function::WebhookIntake => "WebhookIntakeFunction",
        }
    }
}

/// Who may call a gateway route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A bearer JWT the deployment's authorizer accepts.
    Jwt,
    /// Anyone: the function authenticates the request itself (a webhook's signature, the
    /// consent flow's sealed single-use state).
    None,
}

/// A route API Gateway knows.
#[derive(Debug)]
pub struct GatewayRoute {
    /// `ANY` or one method.
    pub method: &'static str,
    /// `{name}` is one segment; `{name+}` (last) the rest of the path.
    pub path: &'static str,
    pub function: Function,
    pub auth: Auth,
}

impl GatewayRoute {
    /// API Gateway's route key, as Lambda's event carries it (`routeKey`).
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The routes of `template.yaml`'s HTTP API.
pub const GATEWAY_ROUTES: &[GatewayRoute] = &[
    GatewayRoute {
        method: "ANY",
        path: "/api/{proxy+}",
        function: Function::Api,
        auth: Auth::Jwt,
    },
    GatewayRoute {
        method: "ANY",
        path: "/api/connections/{id}/webhooks",
        function: Function::ConnectionSetup,
        auth: Auth::Jwt,
    },
    GatewayRoute {
        method: "POST",
        path: "/api/connections/quickbooks/authorize",
        function: Function::ConnectionSetup,
        auth: Auth::Jwt,
    },
    GatewayRoute {
        method: "GET",
        path: "/oauth/quickbooks/callback",
        function: Function::ConnectionSetup,
        auth: Auth::None,
    },
    GatewayRoute {
        method: "ANY",
        path: "/webhooks/{platform}/{connection_id}",
        function: Function::WebhookIntake,
        auth: Auth::None,
    },
    GatewayRoute {
        method: "POST",
        path: "/webhooks/{platform}",
        function: Function::WebhookIntake,
        auth: Auth::None,
    },
];

/// What a route of the API function does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ScheduleList,
    ScheduleCreate,
    SchedulePreview,
    ScheduleGet,
    ScheduleUpdate,
    ScheduleDelete,
    ScheduleRun,
    ScheduleAudit,
    ConnectionList,
    ConnectionCreate,
    ConnectionGet,
    ConnectionUpdate,
    ConnectionDelete,
    ConnectionEvents,
    ConnectionStreams,
    FlowList,
    FlowCreate,
    FlowGet,
    FlowUpdate,
    FlowDelete,
    RunList,
    RunGet,
    RunRetry,
    RunCancel,
    SyncTrigger,
    SyncResync,
    FailureList,
    FailureRetry,
    SweeperStatus,
    AlertList,
    AlertAck,
    AlertDestinationList,
    AlertDestinationCreate,
    AlertDestinationDelete,
    OpenApi,
}

/// A route the API function serves.
#[derive(Debug)]
pub struct ApiRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub endpoint: Endpoint,
    /// What it does, in a line (for the route list and the API's documentation).
    pub summary: &'static str,
}

macro_rules! api_routes {
    ($($method:literal $path:literal => $endpoint:ident, $summary:literal;)*) => {
        /// The routes of the API function.
        pub const API_ROUTES: &[ApiRoute] = &[
            $(ApiRoute { method: $method, path: $path, endpoint: Endpoint::$endpoint, summary: $summary },)*
        ];
    };
}

api_routes! {
    "GET" "/api/sync/schedules" => ScheduleList, "list the tenant's schedules";
    "POST" "/api/sync/schedules" => ScheduleCreate, "create a schedule";
    "POST" "/api/sync/schedules/preview" => SchedulePreview, "next fire times of an expression, nothing stored";
    "GET" "/api/sync/schedules/{id}" => ScheduleGet, "read a schedule";
    "PUT" "/api/sync/schedules/{id}" => ScheduleUpdate, "change a schedule (partial)";
    "DELETE" "/api/sync/schedules/{id}" => ScheduleDelete, "delete a schedule";
    "POST" "/api/sync/schedules/{id}/run" => ScheduleRun, "run a schedule now, paused or not (202, the queued run)";
    "GET" "/api/sync/schedules/{id}/audit" => ScheduleAudit, "a schedule's fire times in a span (`from`, `to`; default the last day), each with its run and what became of it";
    "GET" "/api/connections" => ConnectionList, "list the tenant's connections";
    "POST" "/api/connections" => ConnectionCreate, "create a connection";
    "GET" "/api/connections/{id}" => ConnectionGet, "read a connection";
    "PUT" "/api/connections/{id}" => ConnectionUpdate, "change a connection";
    "DELETE" "/api/connections/{id}" => ConnectionDelete, "delete a connection (`?cascade=true` with its schedules and flows)";
    "GET" "/api/connections/{id}/events" => ConnectionEvents, "the connection's webhook event log, newest first";
    "GET" "/api/connections/{id}/streams" => ConnectionStreams, "the connection's streams: each one's cursor (and who set it by hand), whether a run works on it or a follow-up waits, its last webhooks";
    "GET" "/api/flows" => FlowList, "list the tenant's flows";
    "POST" "/api/flows" => FlowCreate, "create a flow";
    "GET" "/api/flows/{id}" => FlowGet, "read a flow";
    "PUT" "/api/flows/{id}" => FlowUpdate, "change a flow";
    "DELETE" "/api/flows/{id}" => FlowDelete, "delete a flow";
    "GET" "/api/sync/runs" => RunList, "run history, newest first (`schedule_id`, `flow_id`, `connection_id`, `status`, `limit`, `next`)";
    "GET" "/api/sync/runs/{id}" => RunGet, "read a run";
    "POST" "/api/sync/runs/{id}/retry" => RunRetry, "run again a run's failed records, or a run that failed as a whole (202, the queued runs)";
    "POST" "/api/sync/runs/{id}/cancel" => RunCancel, "stop a run: a queued one at once (200), a running one at the end of its page (202)";
    "POST" "/api/sync/trigger" => SyncTrigger, "run a connection's entity now, or some of its records (202, the queued run)";
    "POST" "/api/sync/resync" => SyncResync, "read again and rewrite what the source changed in a span of time (202, the queued run), or set a stream's cursor (200)";
    "GET" "/api/sync/failures" => FailureList, "a connection's quarantined records (`connection_id`, `entity_type`, `limit`, `next`)";
    "POST" "/api/sync/failures/retry" => FailureRetry, "try kept failures again in bulk, by filter (202, the queued runs)";
    "GET" "/api/sync/sweeper" => SweeperStatus, "when the sweeper last swept, and what it did then and in all";
    "GET" "/api/alerts" => AlertList, "the tenant's alert issues, most recently changed first (`status`: open or resolved)";
    "POST" "/api/alerts/{id}/ack" => AlertAck, "acknowledge an open alert: nobody not yet told of it is told";
    "GET" "/api/alerts/destinations" => AlertDestinationList, "where the tenant's alerts go (no URL or secret is shown)";
    "POST" "/api/alerts/destinations" => AlertDestinationCreate, "add an alert destination: `sns`, `slack` (incoming-webhook URL) or `webhook` (signed with HMAC-SHA256)";
    "DELETE" "/api/alerts/destinations/{id}" => AlertDestinationDelete, "remove an alert destination";
    "GET" "/api/openapi.json" => OpenApi, "this API as an OpenAPI 3.1 document";
}

/// The path parameters of a matched route, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The parameter's value (`""` when the route has no such parameter).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How specific a route's path is, compared segment by segment as API Gateway does: a
/// literal segment before a `{parameter}`, a parameter before a greedy `{proxy+}`.
fn specificity(template: &'static str) -> Vec<u8> {
    template
        .split('/')
        .map(|s| match s {
            _ if s.ends_with("+}") => 0,
            _ if s.starts_with('{') => 1,
            _ => 2,
        })
        .collect()
}

/// The parameters of `path` if it falls under `template`.
fn match_path(template: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut want = template.split('/').peekable();
    let mut have = path.split('/');
    while let Some(t) = want.next() {
        if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix("+}")) {
            // Greedy, and last: the rest of the path, at least one segment.
            let rest: Vec<&str> = have.by_ref().collect();
            if rest.is_empty() || rest.iter().all(|s| s.is_empty()) {
                return None;
            }
            params.push((name, rest.join("/")));
            return want.peek().is_none().then_some(Params(params));
        }
        let segment = have.next()?;
        match t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => params.push((name, segment.to_string())),
            Some(_) => return None,
            None if t == segment => {}
            None => return None,
        }
    }
    have.next().is_none().then_some(Params(params))
}

/// The gateway route a request falls under, as API Gateway picks it: the most specific
/// path, then a route of the request's own method before `ANY`. `None`: API Gateway
/// answers 404 itself.
pub fn gateway_route(method: &str, path: &str) -> Option<(&'static GatewayRoute, Params)> {
    GATEWAY_ROUTES
        .iter()
        .filter(|r| r.method == "ANY" || r.method == method)
        .filter_map(|r| Some((r, match_path(r.path, path)?)))
        .max_by_key(|(r, _)| (specificity(r.path), r.method != "ANY"))
}

/// Why no API route answers a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No route has this path.
    NotFound,
    /// Routes have this path, for these methods only.
    MethodNotAllowed(Vec<&'static str>),
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::NotFound => f.write_str("no route for this path"),
            Miss::MethodNotAllowed(allowed) => {
                write!(f, "this path accepts {}", allowed.join(", "))
            }
        }
    }
}

/// The API route of a request (a trailing `/` is ignored), the most specific path first.
pub fn api_route(method: &str, path: &str) -> Result<(&'static ApiRoute, Params), Miss> {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let matching: Vec<(&'static ApiRoute, Params)> = API_ROUTES
        .iter()
        .filter_map(|r| Some((r, match_path(r.path, path)?)))
        .collect();
    let Some(best) = matching.iter().map(|(r, _)| specificity(r.path)).max() else {
        return Err(Miss::NotFound);
    };
    let mut allowed = Vec::new();
    for (route, params) in matching {
        if specificity(route.path) != best {
            continue;
        }
        if route.method == method {
            return Ok((route, params));
        }
        allowed.push(route.method);
    }
    Err(Miss::MethodNotAllowed(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_an_alerts_hint_names_is_a_route_of_the_api() {
        use sync_core::domain::AlertKind;
        let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
        let mut named = 0;
        for kind in AlertKind::ALL {
            let words: Vec<&str> = kind.hint().split_whitespace().collect();
            for pair in words.windows(2) {
                if !methods.contains(&pair[0].trim_start_matches('(')) || !pair[1].starts_with('/')
                {
                    continue;
                }
                let method = pair[0].trim_start_matches('(');
                let path = pair[1]
                    .trim_end_matches([')', ',', '.', ';'])
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .replace("{id}", "0f8fad5b-d9cb-469f-a165-70867728950e");
                named += 1;
                // The API function's, or a route of another function (connection setup).
                let found = api_route(method, &path).is_ok()
                    || gateway_route(method, &path).is_some_and(|(r, _)| {
                        (r.method == method || r.method == "ANY") && !r.path.contains('+')
                    });
                assert!(found, "{kind}: {method} {path} is not a route");
            }
        }
        assert!(named >= 7, "{named}");
    }

    fn gateway(method: &str, path: &str) -> Option<(String, Vec<(&'static str, String)>)> {
        gateway_route(method, path)
            .map(|(r, p)| (r.key(), p.iter().map(|(n, v)| (n, v.to_string())).collect()))
    }

    #[test]
    fn the_gateway_picks_the_most_specific_route_as_api_gateway_does() {
        let key = |method: &str, path: &str| gateway(method, path).map(|(k, _)| k);
        assert_eq!(
            key("GET", "/api/connections/abc/webhooks").as_deref(),
            Some("ANY /api/connections/{id}/webhooks")
        );
        assert_eq!(
            key("POST", "/api/connections/quickbooks/authorize").as_deref(),
            Some("POST /api/connections/quickbooks/authorize")
        );
        // Another method on that path is the API function's to answer.
        assert_eq!(
            key("GET", "/api/connections/quickbooks/authorize").as_deref(),
            Some("ANY /api/{proxy+}")
        );
        assert_eq!(
            gateway("GET", "/api/sync/runs/7"),
            Some((
                "ANY /api/{proxy+}".to_string(),
                vec![("proxy", "sync/runs/7".to_string())]
            ))
        );
        assert_eq!(
            gateway("POST", "/webhooks/woocommerce/c-1"),
            Some((
                "ANY /webhooks/{platform}/{connection_id}".to_string(),
                vec![
                    ("platform", "woocommerce".to_string()),
                    ("connection_id", "c-1".to_string())
                ]
            ))
        );
        assert_eq!(
            key("POST", "/webhooks/quickbooks").as_deref(),
            Some("POST /webhooks/{platform}")
        );
        for (method, path) in [
            ("GET", "/webhooks/quickbooks"),
            ("POST", "/webhooks/"),
            ("POST", "/webhooks/woocommerce/c-1/extra"),
            ("POST", "/oauth/quickbooks/callback"),
            ("GET", "/api"),
            ("GET", "/api/"),
            ("GET", "/elsewhere"),
        ] {
            assert_eq!(key(method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn an_api_route_is_found_by_path_and_method_and_a_miss_says_which_methods_the_path_takes() {
        let found = |method: &str, path: &str| {
            api_route(method, path).map(|(r, p)| (r.endpoint, p.get("id").to_string()))
        };
        assert_eq!(
            found("POST", "/api/sync/schedules/preview"),
            Ok((Endpoint::SchedulePreview, String::new()))
        );
        assert_eq!(
            found("GET", "/api/sync/schedules/9f/"),
            Ok((Endpoint::ScheduleGet, "9f".to_string()))
        );
        assert_eq!(
            found("GET", "/api/sync/schedules/"),
            Ok((Endpoint::ScheduleList, String::new()))
        );
        assert_eq!(
            found("GET", "/api/sync/schedules/preview"),
            Err(Miss::MethodNotAllowed(vec!["POST"]))
        );
        assert_eq!(
            found("PATCH", "/api/flows/3"),
            Err(Miss::MethodNotAllowed(vec!["GET", "PUT", "DELETE"]))
        );
        for path in [
            "/api/sync/schedules/1/2",
            "/api/sync/schedules//x",
            "/api/nothing",
            "/api",
        ] {
            assert_eq!(found("GET", path), Err(Miss::NotFound), "{path}");
        }
    }

    #[test]
    fn every_api_route_reaches_the_api_function_through_the_gateway_and_is_listed_once() {
        for route in API_ROUTES {
            let example = route.path.replace("{id}", "0f8e2b1c");
            let (gateway, _) = gateway_route(route.method, &example)
                .unwrap_or_else(|| panic!("{} {} has no gateway route", route.method, route.path));
            assert_eq!(
                gateway.function,
                Function::Api,
                "{} {}",
                route.method,
                route.path
            );
            let same = API_ROUTES
                .iter()
                .filter(|r| r.method == route.method && r.path == route.path)
                .count();
            assert_eq!(same, 1, "{} {}", route.method, route.path);
        }
    }
}
