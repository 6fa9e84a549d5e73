-- pending_ops: an edit may name its contact by `contact_id`, wxsync's id
-- that survives logins, as well as (or instead of) by `user_name`; wxsync
-- fills in the one not given. A new status, `unverified`: the server
-- accepted the edit, but reading the contact back kept failing, so whether
-- the remark changed is not known. SQLite cannot change a CHECK, so the
-- table is rebuilt. Never edit this file once released.
CREATE TABLE pending_ops_new (
    id          INTEGER PRIMARY KEY,
    user_name   TEXT
        CONSTRAINT "user_name must be text"
        CHECK (user_name IS NULL OR typeof(user_name) = 'text')
        CONSTRAINT "user_name must not be empty" CHECK (length(user_name) > 0),
    contact_id  INTEGER
        CONSTRAINT "contact_id must be an integer"
        CHECK (contact_id IS NULL OR typeof(contact_id) = 'integer'),
    remark_name TEXT NOT NULL
        CONSTRAINT "remark_name must be text" CHECK (typeof(remark_name) = 'text')
        CONSTRAINT "remark_name must be at most 64 characters" CHECK (length(remark_name) <= 64),
    status      TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT "status must be one of pending, done, failed, superseded, unverified"
        CHECK (status IN ('pending', 'done', 'failed', 'superseded', 'unverified')),
    attempts    INTEGER NOT NULL DEFAULT 0
        CONSTRAINT "attempts must not be negative"
        CHECK (attempts >= 0),
    last_error  TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    done_at     TEXT,
    CONSTRAINT "user_name or contact_id must be given"
        CHECK (user_name IS NOT NULL OR contact_id IS NOT NULL)
);
-- Rows already queued get the contact_id of the contact their user_name
-- names now, or named before a re-link; the rest is filled in when applied.
INSERT INTO pending_ops_new
    (id, user_name, contact_id, remark_name, status, attempts, last_error, created_at, done_at)
SELECT p.id, p.user_name,
       coalesce((SELECT c.contact_id FROM contacts c WHERE c.user_name = p.user_name),
                (SELECT h.contact_id FROM contact_changes h
                 WHERE h.change = 'relinked' AND h.old_value = p.user_name
                 ORDER BY h.id DESC LIMIT 1)),
       p.remark_name, p.status, p.attempts, p.last_error, p.created_at, p.done_at
FROM pending_ops p;
DROP TABLE pending_ops;
ALTER TABLE pending_ops_new RENAME TO pending_ops;
CREATE INDEX pending_ops_pending ON pending_ops (id) WHERE status = 'pending';
