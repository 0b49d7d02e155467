//! `syncctl`: the developer's command line. The binary is a thin wrapper around [`run`], so
//! tests drive the same code with captured output.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::time::Duration;

use crate::jwt::LocalJwt;
use crate::local::{LocalOptions, LocalStack};
use crate::provision::Names;
use sync_core::service::MAX_PREVIEW_COUNT;
use sync_core::time::{ScheduleExpression, Zone};

#[derive(Parser, Debug)]
#[command(
    name = "syncctl",
    about = "Developer tool for the sync scheduling service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole system locally against emulated AWS (moto).
    Local {
        /// Address the API listens on.
        #[arg(long, env = "SYNC_LOCAL_LISTEN", default_value = "127.0.0.1:3000")]
        listen: String,
        /// Use a running emulated AWS at this URL instead of starting moto.
        #[arg(long, env = "SYNC_LOCAL_AWS_ENDPOINT")]
        aws_endpoint: Option<String>,
        /// Port for the moto server it starts (default: a free port).
        #[arg(long, env = "SYNC_LOCAL_MOTO_PORT")]
        moto_port: Option<u16>,
        /// Seconds between passes that fire due schedules.
        #[arg(long, default_value_t = 5)]
        tick_seconds: u64,
        /// Seconds webhook events are gathered before they become sync jobs.
        #[arg(long, default_value_t = 5)]
        coalesce_seconds: u64,
        /// Do not start the demo (store simulator, PostgreSQL behind PostgREST, demo tenant).
        #[arg(long)]
        no_demo: bool,
        /// Address moto and the simulators listen on (default: loopback). Docker's bridge
        /// address lets functions that `sam local` runs in containers reach them.
        #[arg(long, env = "SYNC_LOCAL_HOST")]
        host: Option<std::net::IpAddr>,
        /// Also serve `sam local`: create the connections the `events/` samples name and
        /// write SAM's `--env-vars` file (every function pointed at this stack) here.
        #[arg(long)]
        sam_env_file: Option<std::path::PathBuf>,
    },
    /// Start only the simulated platforms (store; PostgreSQL behind PostgREST; QuickBooks'
    /// OAuth service), print where
    /// they are as one JSON line, and run until SIGINT or SIGTERM.
    Sims,
    /// List sync runs, newest first, as a table (through the API, with a dev token).
    Runs {
        /// Tenant whose runs to list.
        #[arg(long, default_value = crate::demo::TENANT)]
        tenant: String,
        /// Base URL of the API.
        #[arg(long, env = "SYNC_API_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// Only runs with this status (queued, running, succeeded, partial, failed, skipped).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this schedule.
        #[arg(long)]
        schedule_id: Option<String>,
        /// Only runs of this flow.
        #[arg(long)]
        flow_id: Option<String>,
        /// Only runs of this connection.
        #[arg(long)]
        connection_id: Option<String>,
        /// How many (1 to 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the table again every two seconds until interrupted.
        #[arg(long)]
        watch: bool,
        /// Claim that carries the tenant (as the API's TENANT_CLAIM).
        #[arg(long, env = "TENANT_CLAIM", default_value = "tenant_id")]
        claim: String,
    },
    /// Run a connection's entity now (or just some of its records), through the API:
    /// prints the queued run (follow it with `syncctl runs`).
    Trigger {
        /// The connection to read from.
        #[arg(long)]
        connection_id: String,
        /// orders, customers or products.
        #[arg(long)]
        entity: String,
        /// incremental (default) or full.
        #[arg(long)]
        mode: Option<String>,
        /// Only this record of the source (repeat for more).
        #[arg(long = "id")]
        ids: Vec<String>,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Read again and rewrite what the source changed in a span of time, or set the stream's
    /// cursor, through the API: prints the queued run (or the cursor set).
    Resync {
        /// The connection to read from.
        #[arg(long)]
        connection_id: String,
        /// orders, customers or products.
        #[arg(long)]
        entity: String,
        /// Changed at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Changed before this time (RFC 3339; default now).
        #[arg(long)]
        to: Option<String>,
        /// Instead of a resync: set the stream's cursor to this time (RFC 3339).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Run a schedule now, paused or not, through the API: prints the queued run.
    RunSchedule {
        /// The schedule's id.
        schedule_id: String,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Run again a run's failed records (or a run that failed as a whole), through the API:
    /// prints the queued runs.
    RetryRun {
        /// The run's id.
        run_id: String,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Stop a run through the API: a queued one at once, a running one at the end of the
    /// page it is on (keeping what it wrote); prints the run.
    CancelRun {
        /// The run's id.
        run_id: String,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Try kept failures again in bulk (by default every quarantined record of the tenant),
    /// through the API: prints how many records, and the queued runs.
    RetryFailures {
        /// Only this connection's.
        #[arg(long)]
        connection_id: Option<String>,
        /// Only this entity's (orders, customers, products).
        #[arg(long)]
        entity: Option<String>,
        /// Only failures whose last error contains this text.
        #[arg(long)]
        error: Option<String>,
        /// Only failures whose last error has this code (quickbooks_6240, http_400, …).
        #[arg(long)]
        code: Option<String>,
        /// Only failures last failed at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only failures last failed before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Also records not quarantined yet.
        #[arg(long)]
        not_quarantined_too: bool,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Print a token the local gateway accepts.
    DevToken {
        /// Tenant the token is for.
        #[arg(long)]
        tenant: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// Claim that carries the tenant (as the API's TENANT_CLAIM).
        #[arg(long, env = "TENANT_CLAIM", default_value = "tenant_id")]
        claim: String,
    },
    /// Print every route of the HTTP API as JSON: the gateway's (method, path, the
    /// template's function, whether the JWT authorizer guards it) and the API function's
    /// (method, path, summary); and the queue-fed functions' batch sizes and timeouts.
    /// `infra/template_check.py` checks `template.yaml` against it.
    Routes,
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET /api/openapi.json` serves).
    Openapi,
    /// Webhook tools.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Compare stored schedules with EventBridge Scheduler and fix the differences.
    ///
    /// Dry run by default: prints every difference and changes nothing. With --apply, fixes
    /// each (through the same read-write-read alignment the API uses, so it is safe while
    /// the API is in use). Against the local stack, pass its AWS endpoint; against a
    /// deployed stack, its table, group, queue and role (the stack outputs) and AWS
    /// credentials in the environment.
    Repair {
        /// Only this tenant's schedules (default: every tenant's).
        #[arg(long)]
        tenant: Option<String>,
        /// Fix what differs (default: only report).
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        target: RepairTarget,
    },
    /// Print the next fire times of an expression, one RFC 3339 UTC time per line.
    Preview {
        /// The expression, in any accepted dialect.
        #[arg(long)]
        expr: String,
        /// IANA time zone.
        #[arg(long, default_value = sync_core::time::DEFAULT_ZONE)]
        tz: String,
        /// Start after this time (RFC 3339); default now.
        #[arg(long)]
        after: Option<String>,
        /// How many times to print (1 to 100).
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

/// Which API a command calls, as which tenant (with a dev token).
#[derive(clap::Args, Debug)]
struct ApiTarget {
    /// Tenant to act as.
    #[arg(long, default_value = crate::demo::TENANT)]
    tenant: String,
    /// Base URL of the API.
    #[arg(long, env = "SYNC_API_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Claim that carries the tenant (as the API's TENANT_CLAIM).
    #[arg(long, env = "TENANT_CLAIM", default_value = "tenant_id")]
    claim: String,
}

#[derive(Subcommand, Debug)]
enum WebhookCommand {
    /// Sign a payload the way the platform would and POST it to a connection's webhook URL.
    Send {
        /// woocommerce, quickbooks or supabase.
        #[arg(long)]
        platform: String,
        /// The connection id (the last segment of its webhook_url).
        #[arg(long)]
        connection: String,
        /// The body to send, sent byte for byte (e.g. events/webhooks/*.body.json).
        #[arg(long)]
        file: std::path::PathBuf,
        /// The connection's webhook secret (WooCommerce webhook secret, QuickBooks verifier
        /// token, Supabase shared secret).
        #[arg(long, env = "SYNC_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Base URL of the API.
        #[arg(long, env = "SYNC_API_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// WooCommerce topic header.
        #[arg(long, default_value = "order.updated")]
        topic: String,
        /// Supabase: the header that carries the shared secret.
        #[arg(long, default_value = "x-webhook-secret")]
        header: String,
        /// Content type to send.
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
}

/// Runs `syncctl` with `args` (the first is the program name); returns the exit code:
/// 0 success, 2 bad input, 1 anything else.
pub async fn run(args: Vec<String>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = write!(err, "{text}");
                2
            } else {
                let _ = write!(out, "{text}");
                0
            };
        }
    };
    let result = match cli.command {
        Command::Preview {
            expr,
            tz,
            after,
            count,
        } => return preview(&expr, &tz, after.as_deref(), count, out, err),
        Command::DevToken { tenant, ttl, claim } => dev_token(&tenant, ttl, &claim, out, err),
        Command::Sims => sims(out).await,
        Command::Routes => routes(out),
        Command::Openapi => openapi(out),
        Command::Runs {
            tenant,
            url,
            status,
            schedule_id,
            flow_id,
            connection_id,
            limit,
            watch,
            claim,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            for (name, value) in [
                ("status", status),
                ("schedule_id", schedule_id),
                ("flow_id", flow_id),
                ("connection_id", connection_id),
            ] {
                if let Some(v) = value {
                    query.push((name, v));
                }
            }
            runs(&tenant, &claim, &url, &query, watch, out, err).await
        }
        Command::Trigger {
            connection_id,
            entity,
            mode,
            ids,
            api,
        } => {
            let mut body = serde_json::json!({
                "connection_id": connection_id,
                "entity_type": entity,
            });
            if let Some(mode) = mode {
                body["sync_mode"] = mode.into();
            }
            if !ids.is_empty() {
                body["ids"] = ids.into();
            }
            post(&api, "/api/sync/trigger", &body, out, err).await
        }
        Command::Resync {
            connection_id,
            entity,
            from,
            to,
            cursor,
            api,
        } => {
            let mut body = serde_json::json!({
                "connection_id": connection_id,
                "entity_type": entity,
            });
            for (name, value) in [
                ("modified_from", from),
                ("modified_to", to),
                ("cursor", cursor),
            ] {
                if let Some(value) = value {
                    body[name] = value.into();
                }
            }
            post(&api, "/api/sync/resync", &body, out, err).await
        }
        Command::RetryRun { run_id, api } => {
            let path = format!("/api/sync/runs/{run_id}/retry");
            post(&api, &path, &serde_json::json!({}), out, err).await
        }
        Command::CancelRun { run_id, api } => {
            let path = format!("/api/sync/runs/{run_id}/cancel");
            post(&api, &path, &serde_json::json!({}), out, err).await
        }
        Command::RetryFailures {
            connection_id,
            entity,
            error,
            code,
            from,
            to,
            not_quarantined_too,
            api,
        } => {
            let mut body = serde_json::json!({"not_quarantined_too": not_quarantined_too});
            for (name, value) in [
                ("connection_id", connection_id),
                ("entity_type", entity),
                ("error_contains", error),
                ("error_code", code),
                ("failed_from", from),
                ("failed_to", to),
            ] {
                if let Some(v) = value {
                    body[name] = v.into();
                }
            }
            post(&api, "/api/sync/failures/retry", &body, out, err).await
        }
        Command::RunSchedule { schedule_id, api } => {
            let path = format!("/api/sync/schedules/{schedule_id}/run");
            post(&api, &path, &serde_json::json!({}), out, err).await
        }
        Command::Repair {
            tenant,
            apply,
            target,
        } => repair(tenant.as_deref(), apply, target, out, err).await,
        Command::Webhook(WebhookCommand::Send {
            platform,
            connection,
            file,
            secret,
            url,
            topic,
            header,
            content_type,
        }) => {
            let send = WebhookSend {
                platform,
                connection,
                file,
                secret,
                url,
                topic,
                header,
                content_type,
            };
            send_webhook(&send, out, err).await
        }
        Command::Local {
            listen,
            aws_endpoint,
            moto_port,
            tick_seconds,
            coalesce_seconds,
            no_demo,
            host,
            sam_env_file,
        } => {
            if let Some(host) = host {
                // Every URL the stack hands out carries this address: it must be one that
                // clients can reach (and "everywhere" would also expose moto's keys).
                if host.is_unspecified() {
                    let _ = writeln!(
                        err,
                        "error: --host {host} is not an address clients can reach; give one of this host's addresses (e.g. Docker's bridge, 172.17.0.1)"
                    );
                    return 2;
                }
                if let Err(e) = platform_sims::server::set_listen_host(host) {
                    let _ = writeln!(err, "error: {e:#}");
                    return 1;
                }
            }
            local(
                LocalOptions {
                    listen,
                    aws_endpoint,
                    moto_port,
                    tick: Duration::from_secs(tick_seconds.max(1)),
                    names: Names::local(),
                    coalesce_window: Duration::from_secs(coalesce_seconds.max(1)),
                    function_env: Vec::new(),
                    demo: !no_demo,
                },
                sam_env_file.as_deref(),
                out,
            )
            .await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            1
        }
    }
}

fn preview(
    expr: &str,
    tz: &str,
    after: Option<&str>,
    count: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let fail = |err: &mut dyn Write, message: String| {
        let _ = writeln!(err, "error: {message}");
        2
    };
    let expression = match ScheduleExpression::parse(expr) {
        Ok(e) => e,
        Err(e) => return fail(err, e.to_string()),
    };
    let zone: Zone = match tz.parse() {
        Ok(z) => z,
        Err(e) => return fail(err, e.to_string()),
    };
    let after: DateTime<Utc> = match after {
        None => Utc::now(),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                return fail(
                    err,
                    format!("--after '{text}' is not an RFC 3339 time, e.g. 2026-11-24T09:00:00Z"),
                )
            }
        },
    };
    if !(1..=MAX_PREVIEW_COUNT).contains(&count) {
        return fail(
            err,
            format!("--count must be from 1 to {MAX_PREVIEW_COUNT}"),
        );
    }
    let preview = match sync_core::service::preview(&expression, zone, after, count) {
        Ok(p) => p,
        Err(e) => return fail(err, e.to_string()),
    };
    for t in preview.next_runs {
        if writeln!(
            out,
            "{}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
        .is_err()
        {
            return 1;
        }
    }
    0
}

fn dev_token(
    tenant: &str,
    ttl: i64,
    claim: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    if sync_core::domain::TenantId::parse(tenant).is_err() || ttl <= 0 {
        writeln!(
            err,
            "error: --tenant must be 1-128 printable characters without spaces, and --ttl positive"
        )?;
        return Ok(2);
    }
    let token = LocalJwt::from_env().token(claim, tenant, Utc::now().timestamp(), ttl);
    writeln!(out, "{token}")?;
    Ok(0)
}

fn openapi(out: &mut dyn Write) -> Result<i32> {
    let doc = sync_api::openapi::document();
    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(0)
}

fn routes(out: &mut dyn Write) -> Result<i32> {
    use sync_api::routes::{Auth, API_ROUTES, GATEWAY_ROUTES};
    let gateway: Vec<serde_json::Value> = GATEWAY_ROUTES
        .iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method,
                "path": r.path,
                "function": r.function.logical_id(),
                "jwt": r.auth == Auth::Jwt,
            })
        })
        .collect();
    let api: Vec<serde_json::Value> = API_ROUTES
        .iter()
        .map(|r| serde_json::json!({"method": r.method, "path": r.path, "summary": r.summary}))
        .collect();
    let queues = serde_json::json!([
        {
            "function": "WebhookCoalescerFunction",
            "batch_size": webhook_coalescer::BATCH_SIZE,
            "timeout_seconds": webhook_coalescer::TIMEOUT.as_secs(),
            "max_receives": sync_core::ports::MAX_RECEIVES,
        },
        {
            "function": "SyncWorkerFunction",
            "batch_size": sync_worker::BATCH_SIZE,
            "timeout_seconds": sync_worker::TIMEOUT.as_secs(),
            "max_receives": sync_core::ports::MAX_RECEIVES,
        },
    ]);
    // The metric names each function's own metrics line carries, by its `Function` dimension
    // (the template's alarms must name one of them), and the sweeper's rate.
    let now = chrono::Utc::now();
    let names = |line: String| -> Vec<String> {
        let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|m| m["Name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let metrics = serde_json::json!({
        "Sweeper": names(sweeper::metrics("-", &Default::default(), now)),
        "SyncWorker": names(sync_worker::metrics("-", &Default::default(), now)),
    });
    let all = serde_json::json!({
        "gateway": gateway,
        "api": api,
        "queues": queues,
        "metrics": metrics,
        "sweeper": {"function": "SweeperFunction", "rate_seconds": sweeper::RATE.as_secs()},
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
    Ok(0)
}

async fn local(
    options: LocalOptions,
    sam_env_file: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<i32> {
    // Listen before starting anything: a stop during start-up (initdb, moto, the demo)
    // stops it there.
    let stop = stop_signal()?;
    tokio::pin!(stop);
    let stack = tokio::select! {
        started = LocalStack::start(&options) => started?,
        () = &mut stop => return Ok(0),
    };
    if let Some(path) = sam_env_file {
        crate::sam::prepare(&stack, path).await?;
    }
    write!(out, "{}", banner(&stack, &options))?;
    if let Some(path) = sam_env_file {
        writeln!(
            out,
            "SAM env-vars: {} (sam local invoke|start-api --config-env local; README, \"Run a function the way Lambda does\")",
            path.display()
        )?;
    }
    out.flush()?;
    stop.await;
    drop(stack);
    Ok(0)
}

/// What `syncctl local` prints once the stack is up.
fn banner(stack: &LocalStack, options: &LocalOptions) -> String {
    let mut lines = vec![
        ("API", format!("{}/api/sync/schedules", stack.api_url)),
        (
            "AWS endpoint",
            format!(
                "{} (moto; region us-east-1, any credentials)",
                stack.aws_endpoint
            ),
        ),
        ("Table", stack.resources.table_name.clone()),
        ("Schedule group", stack.resources.schedule_group.clone()),
        (
            "Webhooks",
            format!("{}/webhooks/{{platform}}/{{connection_id}}", stack.api_url),
        ),
        ("Sync queue", stack.queue_arn.clone()),
        (
            "Token",
            "TOKEN=$(cargo run -q --bin syncctl -- dev-token --tenant acme)".into(),
        ),
        (
            "Repair",
            format!(
                "cargo run -q --bin syncctl -- repair --aws-endpoint {} [--apply]",
                stack.aws_endpoint
            ),
        ),
    ];
    if let Some(demo) = &stack.demo {
        lines.extend([
            (
                "Demo store",
                format!(
                    "{} (WooCommerce simulator; change data as its admin: {}/__admin/wc/v3/…)",
                    demo.store_url, demo.store_url
                ),
            ),
            (
                "Demo project",
                format!("{} (PostgREST over PostgreSQL)", demo.project_url),
            ),
            ("Demo database", demo.psql.clone()),
            (
                "Demo books",
                format!(
                    "{} (QuickBooks simulator; its documents: {}/__admin/qbo/entities/SalesReceipt)",
                    demo.quickbooks_url, demo.quickbooks_url
                ),
            ),
            (
                "Demo token",
                format!(
                    "TOKEN=$(cargo run -q --bin syncctl -- dev-token --tenant {})",
                    crate::demo::TENANT
                ),
            ),
            (
                "Demo runs",
                "cargo run -q --bin syncctl -- runs --watch".to_string(),
            ),
        ]);
    }
    let width = lines
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)
        + 1;
    let mut text = String::from("Local sync service is up.\n");
    for (label, value) in lines {
        text.push_str(&format!("  {:<width$} {value}\n", format!("{label}:")));
    }
    text.push_str(&format!(
        "Due schedules are fired every {}s. Ctrl-C (SIGINT) or SIGTERM stops everything.\n",
        options.tick.as_secs()
    ));
    text
}

/// Resolves at the first SIGINT or SIGTERM. The handlers are installed explicitly, so a
/// stack started in the background by a non-interactive shell (which starts it with SIGINT
/// ignored) stops on SIGINT too.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// `syncctl sims`: the simulated platforms alone, until stopped.
async fn sims(out: &mut dyn Write) -> Result<i32> {
    let stop = stop_signal()?;
    tokio::pin!(stop);
    let p = tokio::select! {
        started = crate::demo::Platforms::start() => started?,
        () = &mut stop => return Ok(0),
    };
    writeln!(
        out,
        "{}",
        serde_json::json!({
            "store_url": p.store_url,
            "consumer_key": p.consumer_key,
            "consumer_secret": p.consumer_secret,
            "project_url": p.project_url,
            "service_key": p.service_key,
            "database_url": p.database_url,
            "quickbooks_url": p.quickbooks_url,
            "quickbooks_client_id": p.quickbooks.config().client_id,
            "quickbooks_client_secret": p.quickbooks.config().client_secret,
            "quickbooks_redirect_uri": p.quickbooks.config().redirect_uris.first(),
            "quickbooks_realm_id": p.quickbooks.config().realm_id,
        })
    )?;
    out.flush()?;
    stop.await;
    drop(p);
    Ok(0)
}

/// POSTs `body` to the API's `path` as the target's tenant; prints the answer (the
/// error on stderr, exit 2 for a refused request).
async fn post(
    api: &ApiTarget,
    path: &str,
    body: &serde_json::Value,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let token = LocalJwt::from_env().token(&api.claim, &api.tenant, Utc::now().timestamp(), 300);
    let url = format!("{}{path}", api.url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .json(body)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("calling {url} (is the local stack running?)"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        writeln!(err, "error: {status}: {answer}")?;
        return Ok(if status.is_client_error() { 2 } else { 1 });
    }
    writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(0)
}

/// `syncctl runs`: the tenant's runs through the API, as a table.
async fn runs(
    tenant: &str,
    claim: &str,
    url: &str,
    query: &[(&str, String)],
    watch: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let jwt = LocalJwt::from_env();
    let http = reqwest::Client::new();
    loop {
        let token = jwt.token(claim, tenant, Utc::now().timestamp(), 300);
        let response = http
            .get(format!("{}/api/sync/runs", url.trim_end_matches('/')))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("calling {url} (is the local stack running?)"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            writeln!(err, "error: {status}: {body}")?;
            return Ok(if status.is_client_error() { 2 } else { 1 });
        }
        let table = runs_table(body["runs"].as_array().map(Vec::as_slice).unwrap_or(&[]));
        if watch {
            // Clear the screen, then the table.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        write!(out, "{table}")?;
        out.flush()?;
        if !watch {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Runs as a fixed-width table, one line each, newest first; under a run, one indented
/// line per record it failed (the first 50 it keeps), with the error.
pub fn runs_table(runs: &[serde_json::Value]) -> String {
    let header = [
        "STARTED", "ID", "ENTITY", "MODE", "TRIGGER", "STATUS", "READ", "WRITTEN", "SAME", "ECHO",
        "FAILED", "CONT", "MS", "MESSAGE",
    ];
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    // Per row, the lines of its failed records.
    let mut failed: Vec<Vec<String>> = vec![Vec::new()];
    for r in runs {
        let started = text(&r["started_at"]);
        failed.push(
            r["failures"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|f| {
                    let error: String = text(&f["error"]).chars().take(100).collect();
                    format!(
                        "  - record {}: {error} (tries {}{})",
                        text(&f["record_id"]),
                        text(&f["attempts"]),
                        if f["quarantined"] == true {
                            ", quarantined"
                        } else if f["retryable"] == true {
                            ", tried again later"
                        } else {
                            ""
                        }
                    )
                })
                .collect(),
        );
        rows.push(vec![
            started.get(..19).unwrap_or(&started).replace('T', " "),
            text(&r["id"]),
            text(&r["entity_type"]),
            text(&r["sync_mode"]),
            text(&r["trigger"]),
            text(&r["status"]),
            text(&r["counts"]["read"]),
            text(&r["counts"]["written"]),
            text(&r["counts"]["unchanged"]),
            text(&r["counts"]["echo_skipped"]),
            text(&r["counts"]["failed"]),
            text(&r["continuations"]),
            text(&r["duration_ms"]),
            text(&r["message"]).chars().take(60).collect(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut table = String::new();
    for (row, failed) in rows.into_iter().zip(failed) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
        for line in failed {
            table.push_str(&line);
            table.push('\n');
        }
    }
    if runs.is_empty() {
        table.push_str("(no runs yet)\n");
    }
    table
}

/// Where `syncctl repair` works.
#[derive(clap::Args, Debug)]
struct RepairTarget {
    /// Emulated AWS endpoint of the local stack (it prints it at start-up).
    #[arg(long, env = "SYNC_LOCAL_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// The stack's table (default: the local stack's).
    #[arg(long, env = "TABLE_NAME")]
    table: Option<String>,
    /// The stack's schedule group.
    #[arg(long, env = "SCHEDULE_GROUP")]
    group: Option<String>,
    /// The sync queue's ARN (what schedules target).
    #[arg(long, env = "SYNC_QUEUE_ARN")]
    queue_arn: Option<String>,
    /// The sync dead-letter queue's ARN.
    #[arg(long, env = "SYNC_DLQ_ARN")]
    dlq_arn: Option<String>,
    /// The role EventBridge Scheduler assumes.
    #[arg(long, env = "SCHEDULER_ROLE_ARN")]
    role_arn: Option<String>,
}

impl RepairTarget {
    /// The SDK configuration and resource names: the local stack's (found, or made, by the
    /// same provisioning the stack runs) when an endpoint is given and no names are, else
    /// the names given, with the default AWS credential chain.
    async fn resolve(self) -> Result<(sync_aws::SdkConfig, sync_core::config::AwsResources)> {
        let sdk = match &self.aws_endpoint {
            Some(endpoint) => sync_aws::sdk::local(endpoint).await,
            None => sync_aws::sdk::from_env().await,
        };
        if self.aws_endpoint.is_some() && self.table.is_none() {
            let provisioned = crate::provision::provision(&sdk, &Names::local()).await?;
            return Ok((sdk, provisioned.resources));
        }
        let need = |v: Option<String>, flag: &str| {
            v.ok_or_else(|| {
                anyhow::anyhow!("{flag} is required without --aws-endpoint (see the stack outputs)")
            })
        };
        let resources = sync_core::config::AwsResources {
            table_name: need(self.table, "--table")?,
            schedule_group: need(self.group, "--group")?,
            // Repair writes EventBridge schedules, which name the queue by ARN only.
            sync_queue_url: String::new(),
            sync_queue_arn: need(self.queue_arn, "--queue-arn")?,
            sync_dlq_arn: need(self.dlq_arn, "--dlq-arn")?,
            scheduler_role_arn: need(self.role_arn, "--role-arn")?,
            kms_key_id: String::new(),
        };
        Ok((sdk, resources))
    }
}

/// Prints the report; exit 0 when everything asked for was done, 1 when a fix failed.
async fn repair(
    tenant: Option<&str>,
    apply: bool,
    target: RepairTarget,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    use sync_core::service::Scope;
    let scope = match tenant {
        None => Scope::All,
        Some(t) => match sync_core::domain::TenantId::parse(t) {
            Ok(t) => Scope::Tenant(t),
            Err(e) => {
                writeln!(err, "error: --tenant: {e}")?;
                return Ok(2);
            }
        },
    };
    let (sdk, resources) = target.resolve().await?;
    let repair = sync_aws::wiring::repair(
        &sdk,
        &resources,
        std::sync::Arc::new(sync_core::clock::SystemClock),
    );
    let report = repair.run(&scope, apply).await?;
    writeln!(
        out,
        "{} stored schedule(s), {} EventBridge schedule(s) in {}",
        report.schedules, report.triggers, resources.schedule_group
    )?;
    for drift in &report.drifts {
        writeln!(out, "  {drift}")?;
    }
    if report.drifts.is_empty() {
        writeln!(out, "in step: nothing to repair")?;
    } else if apply {
        writeln!(out, "fixed {} of {}", report.fixed, report.drifts.len())?;
    } else {
        writeln!(
            out,
            "{} difference(s); nothing changed (dry run). Run again with --apply to fix them.",
            report.drifts.len()
        )?;
    }
    for failure in &report.failures {
        writeln!(err, "error: {failure}")?;
    }
    Ok(if report.failures.is_empty() { 0 } else { 1 })
}

struct WebhookSend {
    platform: String,
    connection: String,
    file: std::path::PathBuf,
    secret: String,
    url: String,
    topic: String,
    header: String,
    content_type: String,
}

/// Signs and posts one delivery; exit 0 on a 2xx answer, 1 otherwise, 2 on bad input.
async fn send_webhook(s: &WebhookSend, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let body = match std::fs::read(&s.file) {
        Ok(b) => b,
        Err(e) => {
            writeln!(err, "error: cannot read {}: {e}", s.file.display())?;
            return Ok(2);
        }
    };
    let endpoint = format!(
        "{}/webhooks/{}/{}",
        s.url.trim_end_matches('/'),
        s.platform,
        s.connection
    );
    let mut request = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", &s.content_type);
    let platform: sync_core::domain::Platform = match s.platform.parse() {
        Ok(p) => p,
        Err(e) => {
            writeln!(err, "error: --platform: {e}")?;
            return Ok(2);
        }
    };
    let options = sync_core::platforms::SignOptions {
        topic: Some(s.topic.clone()),
        header: Some(s.header.clone()),
    };
    for (name, value) in platform.module().sign(&s.secret, &body, &options) {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    writeln!(out, "{} {text}", status.as_u16())?;
    Ok(if status.is_success() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::runs_table;
    use serde_json::json;

    #[test]
    fn the_runs_table_has_one_aligned_line_per_run_under_its_header() {
        let runs = [
            json!({"started_at": "2026-11-29T01:29:02.123Z", "entity_type": "products",
                   "sync_mode": "incremental", "trigger": "schedule", "status": "partial",
                   "counts": {"read": 4, "written": 1, "unchanged": 2, "echo_skipped": 0, "failed": 1},
                   "continuations": 0, "duration_ms": 181, "message": null, "id": "1796497855714-8bcf5fd956f7",
                   "failures": [{"record_id": "17", "error": "a product needs a SKU", "attempts": 5,
                                 "quarantined": true, "retryable": false}]}),
            json!({"started_at": "2026-11-29T01:28:26.000Z", "entity_type": "orders",
                   "sync_mode": "full", "trigger": "manual", "status": "succeeded",
                   "counts": {"read": 60, "written": 60, "unchanged": 0, "echo_skipped": 0, "failed": 0},
                   "continuations": 2, "duration_ms": 5274, "message": "done"}),
        ];
        let table = runs_table(&runs);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("STARTED"));
        assert!(lines[1].starts_with(
            "2026-11-29 01:29:02  1796497855714-8bcf5fd956f7  products  incremental  schedule  partial"
        ));
        assert_eq!(
            lines[2],
            "  - record 17: a product needs a SKU (tries 5, quarantined)"
        );
        let status_column = lines[0].find("STATUS");
        assert_eq!(lines[3].find("succeeded"), status_column, "{table}");
        assert_eq!(runs_table(&[]).lines().last(), Some("(no runs yet)"));
    }
}
