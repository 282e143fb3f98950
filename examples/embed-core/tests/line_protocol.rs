//! The example's line protocol against a running instance on a loopback port.

use std::time::Duration;

use rollcall_core::{Config, Millis};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

async fn client(addr: std::net::SocketAddr) -> (Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf) {
    let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
    (BufReader::new(r).lines(), w)
}

async fn expect_line(lines: &mut Lines<BufReader<OwnedReadHalf>>, want: &str) {
    let got = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no line (waiting for {want:?})"))
        .unwrap()
        .expect("connection open");
    assert_eq!(got, want);
}

#[tokio::test]
async fn track_fans_out_and_a_closed_connection_leaves_then_goes_offline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = Config {
        offline_grace: Millis(100),
        timer_granularity: Millis(10),
        ..Config::default()
    };
    tokio::spawn(example_embed_core::serve(listener, cfg));

    let (mut watcher, _w) = client(addr).await;
    expect_line(&mut watcher, "hello").await;
    let (mut alice_lines, mut alice) = client(addr).await;
    expect_line(&mut alice_lines, "hello").await;
    alice
        .write_all(b"track room1 alice {\"name\":\"Alice\"}\n")
        .await
        .unwrap();
    expect_line(&mut watcher, r#"join room1 alice {"name":"Alice"}"#).await;
    expect_line(&mut watcher, "status alice online").await;
    drop(alice);
    expect_line(&mut watcher, "leave room1 alice").await;
    expect_line(&mut watcher, "status alice offline").await;
}
