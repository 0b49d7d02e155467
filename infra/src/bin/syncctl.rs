//! `syncctl`: see [`infra::cli`].

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,infra=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = std::env::args().collect();
    let code = infra::cli::run(args, &mut std::io::stdout(), &mut std::io::stderr()).await;
    std::process::exit(code);
}
