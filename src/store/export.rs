//! What `wxsync export` reads: live friends (and groups), page by page.

use std::sync::LazyLock;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Error, Store, columns};
use crate::contact::{Contact, Type, Value};

/// One exported contact: its stored columns and its image.
#[derive(Clone, Debug)]
pub struct ExportRow {
    pub contact_id: i64,
    pub contact: Contact,
    pub avatar_sha256: Option<String>,
    pub avatar_mime: Option<String>,
    /// The image itself, when asked for.
    pub avatar: Option<Vec<u8>>,
}

impl<'r> sqlx::FromRow<'r, SqliteRow> for ExportRow {
    fn from_row(row: &'r SqliteRow) -> Result<Self, sqlx::Error> {
        let contact = Contact::from_values(
            |c| match c.ty {
                Type::Text => row.try_get(c.name).map(Value::Text),
                Type::Integer => row.try_get(c.name).map(Value::Integer),
            },
            |c| sqlx::Error::ColumnDecode {
                index: c.name.to_owned(),
                source: format!("not a valid {}", c.name).into(),
            },
        )?;
        Ok(ExportRow {
            contact_id: row.try_get("contact_id")?,
            contact,
            avatar_sha256: row.try_get("avatar_sha256")?,
            avatar_mime: row.try_get("avatar_mime")?,
            avatar: row.try_get("avatar")?,
        })
    }
}

/// Every contact column, the image's name and type, and (with `?4`) the
/// image, of up to `?3` live friends (and groups, with `?1`) after
/// `contact_id` `?2`.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.contact_id, {}, c.avatar_sha256, a.mime AS avatar_mime,
                CASE WHEN ?4 THEN a.image END AS avatar
         FROM contacts c LEFT JOIN avatars a ON a.sha256 = c.avatar_sha256
         WHERE c.deleted_at IS NULL AND (c.kind = 'friend' OR (?1 AND c.kind = 'group'))
           AND c.contact_id > ?2
         ORDER BY c.contact_id LIMIT ?3",
        columns::list("c", &[])
    )
});

impl Store {
    /// Up to `limit` live friends (and groups, with `groups`) after
    /// `after_id`, by `contact_id`; with `images`, each with its image.
    pub async fn export_page(
        &self,
        groups: bool,
        after_id: i64,
        limit: i64,
        images: bool,
    ) -> Result<Vec<ExportRow>, Error> {
        Ok(sqlx::query_as::<_, ExportRow>(PAGE.as_str())
            .bind(groups)
            .bind(after_id)
            .bind(limit)
            .bind(images)
            .fetch_all(&self.pool)
            .await?)
    }
}
