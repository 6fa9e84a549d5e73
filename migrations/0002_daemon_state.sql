-- What the daemon last heard from the server, for `wxsync status`: one row.
CREATE TABLE daemon_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    last_keepalive_at TEXT, -- the last synccheck the server answered
    last_increment_at TEXT  -- the last webwxsync whose contact changes were stored
);

INSERT INTO daemon_state (id) VALUES (1);
