//! `syncctl local` stops cleanly, moto included, on SIGINT and on SIGTERM, also when it was
//! started the way a non-interactive shell starts a background job (with SIGINT ignored).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the stack with SIGINT ignored, as `./infra/local.sh &` in a script does, sends it
/// `signal`, and returns its exit status and moto's port.
fn start_then_signal(signal: &str) -> (Option<i32>, u16) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' INT; exec "$0" local --listen 127.0.0.1:0"#)
        .arg(env!("CARGO_BIN_EXE_syncctl"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting syncctl local: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut port = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_else(|e| panic!("{e}"));
        if let Some(rest) = line.trim().strip_prefix("AWS endpoint:") {
            port = rest
                .split_whitespace()
                .next()
                .and_then(|url| url.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok());
        }
        if line.starts_with("Due schedules") {
            break;
        }
    }
    let port = port.unwrap_or_else(|| panic!("the banner names no AWS endpoint"));
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status.code(), port),
            Ok(None) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => {
                let _ = child.kill();
                panic!("syncctl local did not stop within 20 s of SIG{signal}");
            }
        }
    }
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[test]
fn the_local_stack_stops_with_its_moto_on_sigint_and_on_sigterm() {
    for signal in ["INT", "TERM"] {
        let (code, port) = start_then_signal(signal);
        assert_eq!(code, Some(0), "SIG{signal}");
        let start = Instant::now();
        while answers(port) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!answers(port), "moto still answers after SIG{signal}");
    }
}
