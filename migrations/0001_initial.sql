-- The cache users read with sqlite3. Column names and meanings are fixed by
-- CONTRACT.md; never edit this file once released, add a new migration.

-- One row per contact known to the account. Rows are never deleted: a contact
-- that disappears gets deleted_at, and loses it again if it comes back.
CREATE TABLE contacts (
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
    deleted_at         TEXT
);

CREATE INDEX contacts_kind ON contacts (kind) WHERE deleted_at IS NULL;

-- The current member list of each group.
CREATE TABLE memberships (
    group_user_name  TEXT NOT NULL REFERENCES contacts (user_name),
    member_user_name TEXT NOT NULL,
    nick_name        TEXT NOT NULL DEFAULT '',
    display_name     TEXT NOT NULL DEFAULT '',
    attr_status      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_user_name, member_user_name)
) WITHOUT ROWID;

CREATE INDEX memberships_member ON memberships (member_user_name);

-- The queue users write remark edits to. The constraints refuse nonsense at
-- INSERT time with a message that says what is wrong.
CREATE TABLE pending_ops (
    id          INTEGER PRIMARY KEY,
    user_name   TEXT NOT NULL
        CONSTRAINT "user_name must not be empty"
        CHECK (length(user_name) > 0),
    remark_name TEXT NOT NULL
        CONSTRAINT "remark_name must be at most 64 characters"
        CHECK (length(remark_name) <= 64),
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

CREATE INDEX pending_ops_pending ON pending_ops (id) WHERE status = 'pending';

-- One row per full sync.
CREATE TABLE sync_runs (
    id                      INTEGER PRIMARY KEY,
    started_at              TEXT NOT NULL,
    finished_at             TEXT,
    status                  TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'ok', 'failed')),
    contacts                INTEGER NOT NULL DEFAULT 0, -- contacts seen (incl. groups)
    groups                  INTEGER NOT NULL DEFAULT 0, -- groups seen
    memberships             INTEGER NOT NULL DEFAULT 0, -- membership rows seen
    inserted                INTEGER NOT NULL DEFAULT 0, -- contact rows new in this run
    updated                 INTEGER NOT NULL DEFAULT 0, -- contact rows whose data changed
    deleted                 INTEGER NOT NULL DEFAULT 0, -- contact rows newly marked deleted
    member_count_mismatches INTEGER NOT NULL DEFAULT 0, -- groups whose MemberCount != list length
    notes                   TEXT,                       -- which groups mismatched, in words
    error                   TEXT
);
