-- Avatars kept in the cache: one row per distinct image, named by its
-- sha256, and each contact's current image. See docs/storage.md. Never edit
-- this file once released.

CREATE TABLE avatars (
    sha256        TEXT PRIMARY KEY NOT NULL,  -- lowercase hex of the bytes
    image         BLOB NOT NULL,
    mime          TEXT NOT NULL
        CHECK (mime IN ('image/jpeg', 'image/png', 'image/gif', 'image/webp')),
    bytes         INTEGER NOT NULL,
    first_seen_at TEXT
);  -- a rowid table: an image is larger than a page, too big for WITHOUT ROWID

-- Written by wxsync's avatar fetch, never by a sync: a sync's update leaves
-- them as they are, and a re-link keeps them with the row.
ALTER TABLE contacts ADD COLUMN avatar_sha256 TEXT;      -- the current image (NULL until fetched)
ALTER TABLE contacts ADD COLUMN avatar_fetched_at TEXT;  -- when it was last fetched
ALTER TABLE contacts ADD COLUMN avatar_seq TEXT;         -- the HeadImgUrl `seq` it was fetched for
CREATE INDEX contacts_avatar ON contacts (avatar_sha256) WHERE avatar_sha256 IS NOT NULL;

-- History gains the source `avatar` (a changed image). SQLite cannot alter a
-- CHECK, so the table is rebuilt with the same rows and ids.
CREATE TABLE contact_changes_new (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    user_name  TEXT NOT NULL,
    source     TEXT NOT NULL
        CHECK (source IN ('full_sync', 'increment', 'remark', 'login', 'manual', 'avatar')),
    change     TEXT NOT NULL
        CHECK (change IN ('added', 'removed', 'restored', 'updated', 'relinked', 'joined', 'left')),
    field      TEXT,
    old_value  TEXT,
    new_value  TEXT
);
INSERT INTO contact_changes_new (id, at, contact_id, user_name, source, change, field, old_value, new_value)
SELECT id, at, contact_id, user_name, source, change, field, old_value, new_value FROM contact_changes;
DROP TABLE contact_changes;
ALTER TABLE contact_changes_new RENAME TO contact_changes;
CREATE INDEX contact_changes_contact ON contact_changes (contact_id, at);
CREATE INDEX contact_changes_at ON contact_changes (at);
CREATE INDEX contact_changes_relinked ON contact_changes (old_value) WHERE change = 'relinked';
