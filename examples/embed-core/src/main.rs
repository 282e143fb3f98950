//! `cargo run -p example-embed-core -- 127.0.0.1:7000`, then `nc 127.0.0.1 7000` and type
//! `track room1 alice {"name":"Alice"}`.

use rollcall_core::{Config, Millis};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let cfg = Config {
        heartbeat_interval: Millis(30_000),
        offline_grace: Millis(2_000),
        ..Config::default()
    };
    example_embed_core::serve(listener, cfg).await
}
