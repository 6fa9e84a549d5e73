//! The avatar cache: which contacts need their image fetched, storing the
//! images (one row per distinct image), and removing the ones nothing
//! refers to any more.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{Connection, SqliteConnection};

use super::{Error, Store, now};

/// A live contact whose image is missing or out of date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvatarWanted {
    pub contact_id: i64,
    /// `HeadImgUrl` as stored (no skey).
    pub head_img_url: String,
    /// Its `seq` ("" when it has none).
    pub seq: String,
}

/// How a contact's cached image stands against its avatar URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AvatarState {
    /// The image of the avatar the URL names (its `seq`).
    Current,
    NeverFetched,
    /// An image of an earlier avatar: the `seq` changed since.
    Changed,
}

/// The avatars in the cache, for `wxsync status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AvatarCounts {
    /// Live contacts with an avatar URL: those an image is fetched for.
    pub contacts: i64,
    /// Of those, holding the image of their current avatar.
    pub current: i64,
    /// Of those, without it: `never_fetched` plus `changed`.
    pub missing: i64,
    /// No image yet (not fetched so far, or refused each time).
    pub never_fetched: i64,
    /// An image of an earlier avatar: a new one is due.
    pub changed: i64,
    /// Rows of `avatars` (distinct images, some of them only named by
    /// history) and their total size.
    pub images: i64,
    pub bytes: i64,
}

/// A fetched, checked image for one contact.
#[derive(Clone, Debug)]
pub struct AvatarImage {
    pub contact_id: i64,
    /// The URL it was fetched from: written only while the contact still has it.
    pub head_img_url: String,
    pub seq: String,
    pub sha256: String,
    pub mime: &'static str,
    pub image: Vec<u8>,
}

/// The `seq` query parameter of a `HeadImgUrl` ("" when it has none): it
/// changes with the avatar, and unlike the URL it survives a new login.
pub fn avatar_seq(head_img_url: &str) -> String {
    crate::identity::head_img_seq(head_img_url).unwrap_or_default()
}

impl Store {
    /// A writer for fetched images; it opens its connection on first use.
    pub fn avatar_writer(&self) -> AvatarWriter {
        AvatarWriter {
            store: self.clone(),
            conn: None,
            unchecked: 0,
        }
    }

    /// Live contacts with an avatar URL whose image is not cached, or was
    /// fetched for another `seq`. A re-linked contact keeps its image: its
    /// seq survives the new login.
    pub async fn avatars_wanted(&self) -> Result<Vec<AvatarWanted>, Error> {
        Ok(self
            .avatar_states()
            .await?
            .into_iter()
            .filter_map(|(wanted, state)| (state != AvatarState::Current).then_some(wanted))
            .collect())
    }

    /// What `wxsync status` says of the avatars.
    pub async fn avatar_counts(&self) -> Result<AvatarCounts, Error> {
        let (images, bytes): (i64, i64) =
            sqlx::query_as("SELECT count(*), coalesce(sum(bytes), 0) FROM avatars")
                .fetch_one(&self.pool)
                .await?;
        let mut counts = AvatarCounts {
            images,
            bytes,
            ..AvatarCounts::default()
        };
        for (_, state) in self.avatar_states().await? {
            counts.contacts += 1;
            match state {
                AvatarState::Current => counts.current += 1,
                AvatarState::NeverFetched => counts.never_fetched += 1,
                AvatarState::Changed => counts.changed += 1,
            }
        }
        counts.missing = counts.never_fetched + counts.changed;
        Ok(counts)
    }

    /// Every live contact with an avatar URL, and how its image stands.
    async fn avatar_states(&self) -> Result<Vec<(AvatarWanted, AvatarState)>, Error> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT contact_id, head_img_url, avatar_sha256, avatar_seq FROM contacts
             WHERE deleted_at IS NULL AND head_img_url != '' ORDER BY contact_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(contact_id, head_img_url, sha, fetched_seq)| {
                let seq = avatar_seq(&head_img_url);
                let state = match (sha, fetched_seq) {
                    (None, _) => AvatarState::NeverFetched,
                    (Some(_), Some(fetched)) if fetched == seq => AvatarState::Current,
                    (Some(_), _) => AvatarState::Changed,
                };
                let wanted = AvatarWanted {
                    contact_id,
                    head_img_url,
                    seq,
                };
                (wanted, state)
            })
            .collect())
    }

    /// Live contacts that have an avatar URL (those an image is fetched for).
    pub async fn avatar_contacts(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND head_img_url != ''",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Removes the images no contact refers to and no `contact_changes` row
    /// names (history older than the retention is pruned first, so an image
    /// replaced longer ago than that goes with its last mention).
    pub async fn prune_avatars(&self) -> Result<u64, Error> {
        // Usually none: looked for without a lock first.
        let orphans: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM avatars
             WHERE sha256 NOT IN (SELECT avatar_sha256 FROM contacts WHERE avatar_sha256 IS NOT NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        if orphans == 0 {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM avatars
             WHERE sha256 NOT IN (SELECT avatar_sha256 FROM contacts WHERE avatar_sha256 IS NOT NULL)
               AND sha256 NOT IN (SELECT old_value FROM contact_changes
                                  WHERE field = 'avatar' AND old_value IS NOT NULL
                                  UNION ALL
                                  SELECT new_value FROM contact_changes
                                  WHERE field = 'avatar' AND new_value IS NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// The TEMP table a batch is staged in, on the writer's own connection.
const SCHEMA: &[&str] = &[
    // The write's WAL frames are copied back by the writer's own checkpoint,
    // outside the write lock, not by one SQLite would run inside a commit.
    "PRAGMA wal_autocheckpoint = 0",
    "CREATE TEMP TABLE avatar_batch (
        contact_id INTEGER NOT NULL, head_img_url TEXT NOT NULL, seq TEXT NOT NULL,
        sha256 TEXT NOT NULL, mime TEXT NOT NULL, image BLOB NOT NULL,
        -- set under the lock: the contact still has this URL, and its image then
        current INTEGER NOT NULL DEFAULT 0, old TEXT
    )",
];

/// A staged batch's write, `BEGIN IMMEDIATE` to `COMMIT`, then how many
/// images it wrote. `?1` is now.
const WRITE: &str = "
BEGIN IMMEDIATE;
UPDATE temp.avatar_batch SET current = 1, old = c.avatar_sha256
    FROM main.contacts AS c
    WHERE c.contact_id = avatar_batch.contact_id AND c.head_img_url = avatar_batch.head_img_url;
INSERT INTO main.avatars (sha256, image, mime, bytes, first_seen_at)
    SELECT sha256, image, mime, length(image), ?1 FROM temp.avatar_batch WHERE current
    ON CONFLICT (sha256) DO NOTHING;
INSERT INTO main.contact_changes
        (at, contact_id, user_name, source, change, field, old_value, new_value)
    SELECT ?1, b.contact_id, c.user_name, 'avatar', 'updated', 'avatar', b.old, b.sha256
    FROM temp.avatar_batch AS b JOIN main.contacts AS c ON c.contact_id = b.contact_id
    WHERE b.current AND b.old IS NOT NULL AND b.old != b.sha256
    ORDER BY b.rowid;
UPDATE main.contacts SET avatar_sha256 = b.sha256, avatar_seq = b.seq, avatar_fetched_at = ?1
    FROM temp.avatar_batch AS b
    WHERE b.current AND main.contacts.contact_id = b.contact_id;
COMMIT;
SELECT count(*) FROM temp.avatar_batch WHERE current";

/// Reads, before the write, the pages the write will change: the contacts'
/// rows and the index pages their new images' names go into. The write then
/// finds them in this connection's page cache (kept while no other
/// connection writes) instead of reading them under the lock.
const WARM: &str = "SELECT
    (SELECT count(*) FROM temp.avatar_batch AS b JOIN main.contacts AS c
         ON c.contact_id = b.contact_id),
    (SELECT count(*) FROM temp.avatar_batch AS b JOIN main.avatars AS a ON a.sha256 = b.sha256),
    (SELECT count(*) FROM temp.avatar_batch AS b JOIN main.contacts AS c
         ON c.avatar_sha256 = b.sha256)";

/// Parameters per staged image.
const PER_IMAGE: usize = 6;

/// Bytes of images written before the writer copies the WAL back: about
/// SQLite's own threshold (1,000 pages).
const CHECKPOINT_AFTER: usize = 4 << 20;

/// Stores fetched images over a connection of its own. Each batch goes to
/// SQLite as one list of statements that its worker thread runs back to
/// back: the rows are staged in a TEMP table (no lock on the cache), then
/// one transaction stores the images, writes the history and points the
/// contacts at them. The write lock is thus held for SQLite's own work
/// alone, never across a round trip to this task, and a checkpoint runs
/// between batches, outside it.
pub struct AvatarWriter {
    store: Store,
    conn: Option<SqliteConnection>,
    /// Image bytes written since the last checkpoint.
    unchecked: usize,
}

impl AvatarWriter {
    /// Stores `images` and points their contacts at them; returns how many
    /// it wrote and how long the write took (an upper bound of the lock).
    /// A contact whose URL changed since the fetch (a newer avatar, a new
    /// login) is left alone: its newer image is fetched next. A different
    /// image than the stored one writes an `updated` history row, field
    /// `avatar`; the first one writes none. The same bytes are kept once.
    /// On an error nothing of the batch is written.
    pub async fn save(&mut self, images: &[AvatarImage]) -> Result<(usize, Duration), Error> {
        if images.is_empty() {
            return Ok((0, Duration::ZERO));
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let mut conn = self.store.connect().await?;
                for sql in SCHEMA {
                    sqlx::query(*sql).execute(&mut conn).await?;
                }
                self.conn.insert(conn)
            }
        };
        let mut stage = sqlx::query(sqlx::AssertSqlSafe(stage_statements(images.len())));
        for a in images {
            stage = stage
                .bind(a.contact_id)
                .bind(&a.head_img_url)
                .bind(&a.seq)
                .bind(&a.sha256)
                .bind(a.mime)
                .bind(&a.image);
        }
        let staged = stage.execute(&mut *conn).await;
        let started = Instant::now();
        let written = match staged {
            // Every statement runs (a scalar fetch would stop at the first row).
            Ok(_) => sqlx::query_scalar::<_, i64>(WRITE)
                .bind(now())
                .fetch_all(&mut *conn)
                .await
                .map(|rows| rows.first().copied().unwrap_or(0)),
            Err(e) => Err(e),
        };
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                // Closing the connection rolls back what the batch began.
                if let Some(conn) = self.conn.take() {
                    let _ = conn.close().await;
                }
                return Err(e.into());
            }
        };
        let took = started.elapsed();
        self.unchecked += images.iter().map(|a| a.image.len()).sum::<usize>();
        if self.unchecked >= CHECKPOINT_AFTER {
            self.checkpoint().await?;
        }
        Ok((usize::try_from(written).unwrap_or(0), took))
    }

    /// Copies what it wrote from the WAL into the database file, and closes
    /// its connection.
    pub async fn finish(mut self) -> Result<(), Error> {
        if self.unchecked > 0 {
            self.checkpoint().await?;
        }
        if let Some(conn) = self.conn.take() {
            conn.close().await?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<(), Error> {
        if let Some(conn) = &mut self.conn {
            sqlx::query("PRAGMA main.wal_checkpoint(PASSIVE)")
                .execute(&mut *conn)
                .await?;
        }
        self.unchecked = 0;
        Ok(())
    }
}

/// Stages a batch of `n` images in place of the previous batch.
fn stage_statements(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let p: Vec<String> = (1..=PER_IMAGE)
                .map(|k| format!("?{}", i * PER_IMAGE + k))
                .collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "DELETE FROM temp.avatar_batch;
         INSERT INTO temp.avatar_batch (contact_id, head_img_url, seq, sha256, mime, image)
         VALUES {};
         {WARM}",
        rows.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(bytes))
    }

    fn image(contact_id: i64, url: &str, bytes: &[u8]) -> AvatarImage {
        AvatarImage {
            contact_id,
            head_img_url: url.to_owned(),
            seq: avatar_seq(url),
            sha256: sha(bytes),
            mime: "image/jpeg",
            image: bytes.to_vec(),
        }
    }

    /// One batch: the same bytes for two contacts kept once, an image
    /// fetched from a URL the contact no longer has left out; a second
    /// batch with a new image writes the history row the first one did not.
    #[tokio::test]
    async fn a_batch_writes_current_contacts_once_per_image_and_records_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        sqlx::query(
            "INSERT INTO contacts (user_name, kind, head_img_url, first_seen_at, updated_at,
                 contact_id)
             VALUES ('@a', 'friend', '/i?seq=1&username=@a', 'x', 'x', 1),
                    ('@b', 'friend', '/i?seq=1&username=@b', 'x', 'x', 2),
                    ('@c', 'friend', '/i?seq=2&username=@c', 'x', 'x', 3)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let mut writer = store.avatar_writer();
        let first = [
            image(1, "/i?seq=1&username=@a", b"same"),
            image(2, "/i?seq=1&username=@b", b"same"),
            image(3, "/i?seq=1&username=@c", b"stale"),
        ];
        assert_eq!(writer.save(&first).await.unwrap().0, 2);
        writer
            .save(&[image(1, "/i?seq=1&username=@a", b"new")])
            .await
            .unwrap();
        writer.finish().await.unwrap();

        let rows: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT contact_id, avatar_sha256 FROM contacts ORDER BY 1")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let sha = |b: &[u8]| Some(sha(b));
        assert_eq!(rows, [(1, sha(b"new")), (2, sha(b"same")), (3, None)]);
        let images: i64 = sqlx::query_scalar("SELECT count(*) FROM avatars")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(images, 2);
        let history: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT contact_id, old_value, new_value FROM contact_changes WHERE field = 'avatar'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(history, [(1, sha(b"same"), sha(b"new"))]);
    }

    #[test]
    fn the_seq_is_read_from_the_query() {
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?seq=620&username=@ab"),
            "620"
        );
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgetheadimg?username=@@ab&seq=7"),
            "7"
        );
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?username=@ab"),
            ""
        );
        assert_eq!(avatar_seq(""), "");
    }
}
