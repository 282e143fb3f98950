//! `cargo run -p example-axum-embed`, then open <http://127.0.0.1:4000/> (Rollcall's demo page)
//! in two tabs and <http://127.0.0.1:4000/app/rooms/lobby/members> (the app's own route).

use rollcall_server::{Server, ServerConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Rollcall's defaults: open mode (no auth), in-memory presence, no database. Set fields
    // here (`cfg.bind`, `cfg.core.offline_grace`, `cfg.database_url`, ...): docs/configuration.md.
    let cfg = ServerConfig::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = Server::builder()
        .config(cfg)
        .build()
        .map_err(std::io::Error::other)?;
    example_axum_embed::run(listener, server, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
