-- memberships.member_contact_id: the member's contacts.contact_id when the
-- member is a live contact (a friend, the account itself, ...), else NULL, so
-- that a user can join members to contacts by wxsync's stable id instead of
-- a user name that changes at every login. The store keeps it right on every
-- write (docs/storage.md). Never edit this file once released.
ALTER TABLE memberships ADD COLUMN member_contact_id INTEGER;
UPDATE memberships SET member_contact_id = (
    SELECT c.contact_id FROM contacts c
    WHERE c.user_name = memberships.member_user_name AND c.deleted_at IS NULL);
