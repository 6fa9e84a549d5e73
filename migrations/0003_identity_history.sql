-- Stable contact ids across logins, the change history, the bookkeeping of
-- the staged full-sync write, and a remark queue that refuses non-text values.
-- See docs/storage.md. Never edit this file once released.

-- memberships first: it no longer references contacts (the store renames
-- both itself when a login re-issues user names, and a foreign-key probe per
-- row made big syncs slow), so the old contacts table can then be dropped.
-- Nor is it indexed by member: keeping that index up cost half of a sync's
-- write lock, and a lookup by member scans 150,000 rows in milliseconds.
CREATE TABLE memberships_new (
    group_user_name  TEXT NOT NULL,
    member_user_name TEXT NOT NULL,
    nick_name        TEXT NOT NULL DEFAULT '',
    display_name     TEXT NOT NULL DEFAULT '',
    attr_status      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_user_name, member_user_name)
) WITHOUT ROWID;
INSERT INTO memberships_new SELECT * FROM memberships;
DROP TABLE memberships;
ALTER TABLE memberships_new RENAME TO memberships;

-- contacts gains contact_id (wxsync's own id: assigned at first sight, kept
-- across logins, never reused) and real_id (the permanent wxid_…,
-- …@chatroom or gh_… id, once a MsgType 51 message has named it).
CREATE TABLE contacts_new (
    user_name          TEXT PRIMARY KEY NOT NULL,
    kind               TEXT NOT NULL
        CONSTRAINT "kind must be one of self, friend, group, official, special"
        CHECK (kind IN ('self', 'friend', 'group', 'official', 'special')),
    nick_name          TEXT NOT NULL DEFAULT '',
    remark_name        TEXT NOT NULL DEFAULT '',
    alias              TEXT NOT NULL DEFAULT '',
    signature          TEXT NOT NULL DEFAULT '',
    province           TEXT NOT NULL DEFAULT '',
    city               TEXT NOT NULL DEFAULT '',
    head_img_url       TEXT NOT NULL DEFAULT '',
    sex                INTEGER NOT NULL DEFAULT 0,
    verify_flag        INTEGER NOT NULL DEFAULT 0,
    contact_flag       INTEGER NOT NULL DEFAULT 0,
    star_friend        INTEGER NOT NULL DEFAULT 0,
    member_count       INTEGER NOT NULL DEFAULT 0,
    encry_chat_room_id TEXT NOT NULL DEFAULT '',
    raw                TEXT NOT NULL DEFAULT '{}',
    first_seen_at      TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    deleted_at         TEXT,
    contact_id         INTEGER NOT NULL UNIQUE,
    real_id            TEXT
);
INSERT INTO contacts_new
SELECT *, row_number() OVER (ORDER BY first_seen_at, user_name), NULL FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_new RENAME TO contacts;
-- By kind, and covering what every full sync reads of all contacts (name,
-- id, whether deleted) without reading the rows, which carry `raw`.
CREATE INDEX contacts_kind ON contacts (kind, deleted_at, user_name, contact_id);
CREATE INDEX contacts_real_id ON contacts (real_id) WHERE real_id IS NOT NULL;

-- Identity bookkeeping: which login's user names the cache holds (a full
-- sync under another login links the rows first), and the next contact_id.
CREATE TABLE identity (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    login_id        TEXT,
    linked_at       TEXT,
    next_contact_id INTEGER NOT NULL
);
INSERT INTO identity (id, next_contact_id)
VALUES (1, (SELECT coalesce(max(contact_id), 0) + 1 FROM contacts));

-- The MsgType 51 map of the newest login: session user name → real id.
CREATE TABLE real_ids (
    user_name TEXT PRIMARY KEY NOT NULL,
    real_id   TEXT NOT NULL,
    seen_at   TEXT NOT NULL
) WITHOUT ROWID;

-- Rows of a previous login that the last re-link could not tell apart with
-- confidence, with their best candidates among the new rows
-- (`wxsync identity` lists them; `wxsync identity link` decides).
CREATE TABLE identity_candidates (
    old_contact_id INTEGER NOT NULL,
    new_contact_id INTEGER NOT NULL,
    score          REAL NOT NULL,
    evidence       TEXT NOT NULL,
    found_at       TEXT NOT NULL,
    PRIMARY KEY (old_contact_id, new_contact_id)
) WITHOUT ROWID;

-- A digest of each group's stored member list, so a full sync can tell a
-- group whose members did not change without comparing them row by row.
CREATE TABLE membership_digests (
    group_user_name TEXT PRIMARY KEY NOT NULL,
    digest          TEXT NOT NULL
) WITHOUT ROWID;

-- One row per change, written in the same transaction as the change.
CREATE TABLE contact_changes (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    user_name  TEXT NOT NULL,
    source     TEXT NOT NULL
        CHECK (source IN ('full_sync', 'increment', 'remark', 'login', 'manual')),
    change     TEXT NOT NULL
        CHECK (change IN ('added', 'removed', 'restored', 'updated', 'relinked', 'joined', 'left')),
    field      TEXT,
    old_value  TEXT,
    new_value  TEXT
);
CREATE INDEX contact_changes_contact ON contact_changes (contact_id, at);
CREATE INDEX contact_changes_at ON contact_changes (at);
-- A remark edit may name its contact by a user name of an earlier login.
CREATE INDEX contact_changes_relinked ON contact_changes (old_value) WHERE change = 'relinked';

ALTER TABLE sync_runs ADD COLUMN relinked INTEGER NOT NULL DEFAULT 0;  -- rows linked to this login's names
ALTER TABLE sync_runs ADD COLUMN unlinked INTEGER NOT NULL DEFAULT 0;  -- previous login's rows left unlinked
ALTER TABLE sync_runs ADD COLUMN memberships_changed INTEGER NOT NULL DEFAULT 0; -- membership rows written or removed
ALTER TABLE sync_runs ADD COLUMN write_lock_ms INTEGER;                -- how long the final write held the lock
ALTER TABLE sync_runs ADD COLUMN deletion_digest TEXT;                 -- a mass deletion held back (see docs/storage.md)

-- pending_ops: SQLite's type affinity accepts a BLOB or an integer in a TEXT
-- column; refuse them at INSERT. Rows already queued with such values are
-- kept, failed with the reason.
CREATE TABLE pending_ops_new (
    id          INTEGER PRIMARY KEY,
    user_name   TEXT NOT NULL
        CONSTRAINT "user_name must be text" CHECK (typeof(user_name) = 'text')
        CONSTRAINT "user_name must not be empty" CHECK (length(user_name) > 0),
    remark_name TEXT NOT NULL
        CONSTRAINT "remark_name must be text" CHECK (typeof(remark_name) = 'text')
        CONSTRAINT "remark_name must be at most 64 characters" CHECK (length(remark_name) <= 64),
    status      TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT "status must be one of pending, done, failed, superseded"
        CHECK (status IN ('pending', 'done', 'failed', 'superseded')),
    attempts    INTEGER NOT NULL DEFAULT 0
        CONSTRAINT "attempts must not be negative"
        CHECK (attempts >= 0),
    last_error  TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    done_at     TEXT
);
INSERT INTO pending_ops_new
SELECT id,
       CASE WHEN typeof(user_name) = 'text' THEN user_name
            ELSE 'x''' || hex(user_name) || '''' END,
       CASE WHEN typeof(remark_name) = 'text' THEN remark_name ELSE '' END,
       CASE WHEN typeof(user_name) = 'text' AND typeof(remark_name) = 'text' THEN status
            ELSE 'failed' END,
       attempts,
       CASE WHEN typeof(user_name) != 'text'
                THEN 'user_name was a ' || typeof(user_name) || ', not text'
            WHEN typeof(remark_name) != 'text'
                THEN 'remark_name was a ' || typeof(remark_name) || ' (hex ' || hex(remark_name)
                     || '), not text'
            ELSE last_error END,
       created_at,
       CASE WHEN typeof(user_name) = 'text' AND typeof(remark_name) = 'text' THEN done_at
            ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END
FROM pending_ops;
DROP TABLE pending_ops;
ALTER TABLE pending_ops_new RENAME TO pending_ops;
CREATE INDEX pending_ops_pending ON pending_ops (id) WHERE status = 'pending';
