-- The daemon's push login after a logout (`[login] push_on_logout`), for
-- `wxsync status`: one record, for the newest logged-out session it asked for.
ALTER TABLE daemon_state ADD COLUMN push_login_id TEXT;   -- wxsync's own id of that session (not a credential)
ALTER TABLE daemon_state ADD COLUMN push_state TEXT
    CHECK (push_state IN ('asking', 'not_confirmed', 'gave_up', 'refused', 'confirmed'));
ALTER TABLE daemon_state ADD COLUMN push_asks INTEGER NOT NULL DEFAULT 0;  -- asks sent for that session
ALTER TABLE daemon_state ADD COLUMN push_last_at TEXT;    -- the newest ask
ALTER TABLE daemon_state ADD COLUMN push_next_at TEXT;    -- when the next ask may go out
ALTER TABLE daemon_state ADD COLUMN push_detail TEXT;     -- why, in words
