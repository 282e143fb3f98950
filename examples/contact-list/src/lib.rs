//! A contact list on `rollcall-client`: be present in a shared channel as `me`, and report the
//! online/offline status of some contacts — first all of them, then only real changes (a
//! second device, a reconnect or a meta update of a contact prints nothing).

use rollcall_client::{ChannelConfig, ChannelError, Client, ClientConfig, ConfigError, Status};

/// Where to connect and who is who.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Realtime endpoint, `ws://host:4000/realtime/v1`.
    pub endpoint: String,
    /// The `apikey` (any value for an open Rollcall; the anon key for Supabase).
    pub apikey: String,
    /// The channel everyone is present in.
    pub room: String,
    /// This user's presence key.
    pub me: String,
    /// The keys to watch.
    pub contacts: Vec<String>,
}

/// Why [`run`] stopped.
#[derive(Debug)]
pub enum RunError {
    /// The endpoint is not a valid URL.
    Config(ConfigError),
    /// Join, track or watch failed.
    Channel(ChannelError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Config(e) => write!(f, "{e}"),
            RunError::Channel(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

fn word(s: Status) -> &'static str {
    match s {
        Status::Online => "online",
        Status::Offline => "offline",
    }
}

/// Connects, tracks `me`, and calls `show` with `"<contact> online|offline"` lines: one per
/// contact at first (sorted), then one per real change, until the client stops.
pub async fn run(opts: Options, mut show: impl FnMut(String)) -> Result<(), RunError> {
    let client =
        Client::connect(ClientConfig::new(opts.endpoint, opts.apikey)).map_err(RunError::Config)?;
    let room = client
        .join(&opts.room, ChannelConfig::with_key(opts.me.as_str()))
        .await
        .map_err(RunError::Channel)?;
    room.track(serde_json::json!({ "name": opts.me }))
        .await
        .map_err(RunError::Channel)?;
    let mut watch = client
        .watch(opts.contacts.iter().map(String::as_str))
        .await
        .map_err(RunError::Channel)?;
    let mut initial: Vec<_> = watch
        .initial()
        .iter()
        .map(|(k, s)| (k.clone(), *s))
        .collect();
    initial.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, status) in initial {
        show(format!("{key} {}", word(status)));
    }
    while let Some(change) = watch.recv().await {
        show(format!("{} {}", change.key, word(change.status)));
    }
    Ok(())
}
