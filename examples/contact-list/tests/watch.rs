//! The contact list against a real server on a loopback port: initial statuses, then a
//! contact coming online (twice, on two devices: one line) and going offline.

use std::time::Duration;

use example_contact_list::{Options, run};
use rollcall_client::{ChannelConfig, Client, ClientConfig};
use rollcall_server::{Server, ServerConfig};
use tokio::sync::mpsc;

async fn next(lines: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.recv())
        .await
        .expect("a line within 10 s")
        .expect("run() still going")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_statuses_then_only_real_changes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .config(ServerConfig::default())
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(listener, async {
        let _ = stop_rx.await;
    }));
    let endpoint = format!("ws://{addr}/realtime/v1");

    let (tx, mut lines) = mpsc::unbounded_channel();
    let opts = Options {
        endpoint: endpoint.clone(),
        apikey: "any".into(),
        room: "contacts".into(),
        me: "alice".into(),
        contacts: vec!["bob".into(), "carol".into()],
    };
    let contact_list = tokio::spawn(run(opts, move |l| {
        let _ = tx.send(l);
    }));
    assert_eq!(next(&mut lines).await, "bob offline");
    assert_eq!(next(&mut lines).await, "carol offline");

    let phone = Client::connect(ClientConfig::new(endpoint.clone(), "any")).unwrap();
    let ch = phone
        .join("contacts", ChannelConfig::with_key("bob"))
        .await
        .unwrap();
    ch.track(serde_json::json!({"device": "phone"}))
        .await
        .unwrap();
    assert_eq!(next(&mut lines).await, "bob online");
    let laptop = Client::connect(ClientConfig::new(endpoint, "any")).unwrap();
    let ch2 = laptop
        .join("contacts", ChannelConfig::with_key("bob"))
        .await
        .unwrap();
    ch2.track(serde_json::json!({"device": "laptop"}))
        .await
        .unwrap();
    ch.untrack().await.unwrap();
    ch2.untrack().await.unwrap();
    // The laptop's track and the phone's untrack printed nothing: the next line is the real change.
    assert_eq!(next(&mut lines).await, "bob offline");

    contact_list.abort();
    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();
}
