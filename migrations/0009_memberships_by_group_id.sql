-- memberships keyed by what a new login does not rename. Every login
-- re-issues every user name, so a table keyed by (group_user_name,
-- member_user_name) moved every row to a new place in its B-tree at the first
-- sync after it: on a 150,000-row account that rename alone held the write
-- lock for 0.7 s. Now the rows are a plain rowid table, found by the group's
-- stable contacts.contact_id (`group_contact_id`, indexed); the user names
-- are ordinary columns, rewritten in place. (group_user_name,
-- member_user_name) stays unique: the store writes it so. A filter by
-- group_user_name reads the whole table (milliseconds); by group_contact_id
-- it is a seek. See docs/storage.md. Never edit this file once released.
CREATE TABLE memberships_new (
    group_user_name   TEXT NOT NULL,
    member_user_name  TEXT NOT NULL,
    nick_name         TEXT NOT NULL DEFAULT '',
    display_name      TEXT NOT NULL DEFAULT '',
    attr_status       INTEGER NOT NULL DEFAULT 0,
    member_contact_id INTEGER,
    group_contact_id  INTEGER NOT NULL
);
-- Every stored group has its contacts row (a group marked deleted has no
-- member rows), so the join keeps every row.
INSERT INTO memberships_new
SELECT m.group_user_name, m.member_user_name, m.nick_name, m.display_name, m.attr_status,
       m.member_contact_id, c.contact_id
FROM memberships m JOIN contacts c ON c.user_name = m.group_user_name
ORDER BY c.contact_id, m.member_user_name;
DROP TABLE memberships;
ALTER TABLE memberships_new RENAME TO memberships;
CREATE INDEX memberships_group ON memberships (group_contact_id);
