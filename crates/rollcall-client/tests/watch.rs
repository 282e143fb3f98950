//! `watch(keys)` yields only real status changes: a second device, a second channel, or one
//! of two devices leaving yields nothing.

mod support;

use std::time::Duration;

use rollcall_client::{ChannelConfig, Client, Status, StatusChange};
use serde_json::json;
use support::{client_config, fast_config, next_change, start};

#[tokio::test]
async fn watch_emits_online_once_and_offline_once_across_devices_and_channels() {
    let server = start(fast_config(1000, 3)).await;
    let observer = Client::connect(client_config(&server)).unwrap();
    let _r1 = observer
        .join("w1", ChannelConfig::with_key("obs"))
        .await
        .unwrap();
    let _r2 = observer
        .join("w2", ChannelConfig::with_key("obs"))
        .await
        .unwrap();
    let mut watch = observer.watch(["u", "nobody"]).await.unwrap();
    assert_eq!(watch.initial()["u"], Status::Offline);

    let phone = Client::connect(client_config(&server)).unwrap();
    let p1 = phone
        .join("w1", ChannelConfig::with_key("u"))
        .await
        .unwrap();
    p1.track(json!({"device": "phone"})).await.unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        StatusChange {
            key: "u".into(),
            status: Status::Online
        }
    );

    // a second device in the same channel, the same user in a second channel, a meta update
    let laptop = Client::connect(client_config(&server)).unwrap();
    let l1 = laptop
        .join("w1", ChannelConfig::with_key("u"))
        .await
        .unwrap();
    l1.track(json!({"device": "laptop"})).await.unwrap();
    let l2 = laptop
        .join("w2", ChannelConfig::with_key("u"))
        .await
        .unwrap();
    l2.track(json!({"device": "laptop"})).await.unwrap();
    p1.track(json!({"device": "phone", "away": true}))
        .await
        .unwrap();
    // one device goes away
    phone.disconnect().await;
    l1.untrack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watch.try_recv(),
        None,
        "no repeated online, no offline while l2 is present"
    );

    l2.leave().await.unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        StatusChange {
            key: "u".into(),
            status: Status::Offline
        }
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(watch.try_recv(), None);
    server.shutdown().await;
}
