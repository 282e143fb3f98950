-- One row per online period of a key on one node (a Login, then its Logout).
CREATE TABLE presence_sessions (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           TEXT    NOT NULL,
    node_id       TEXT    NOT NULL,
    -- Identity of the session within its node: (run_id, seq) is assigned by the writer, so a
    -- batch retried after an unknown commit outcome inserts nothing twice.
    run_id        BIGINT  NOT NULL,
    seq           BIGINT  NOT NULL,
    login_at      BIGINT  NOT NULL,   -- Unix ms
    logout_at     BIGINT,             -- Unix ms; NULL while open
    logout_reason TEXT,               -- untracked, closed, timeout, shutdown, node_restart
    UNIQUE (node_id, run_id, seq)
);
CREATE INDEX presence_sessions_key_login ON presence_sessions (key, login_at);
CREATE INDEX presence_sessions_open ON presence_sessions (node_id) WHERE logout_at IS NULL;

-- The latest known status of each key.
CREATE TABLE presence_last_seen (
    key        TEXT   PRIMARY KEY,
    status     TEXT   NOT NULL,       -- online, idle, offline
    last_seen  BIGINT NOT NULL,       -- Unix ms of the event that set status
    node_id    TEXT   NOT NULL,
    updated_at BIGINT NOT NULL        -- Unix ms of the write
);

-- One row per node: refreshed every beat interval, it dates the sessions a crash left open.
CREATE TABLE presence_nodes (
    node_id    TEXT   PRIMARY KEY,
    run_id     BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    last_beat  BIGINT NOT NULL
);
