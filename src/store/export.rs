//! What `wxsync export` reads: live friends (and groups), page by page.

use super::{Error, Store};

/// One exported contact.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ExportRow {
    pub contact_id: i64,
    pub kind: String,
    pub nick_name: String,
    pub remark_name: String,
    pub alias: String,
    pub signature: String,
    pub province: String,
    pub city: String,
    pub sex: i64,
    pub avatar_sha256: Option<String>,
    pub avatar_mime: Option<String>,
    /// The image itself, when asked for.
    pub avatar: Option<Vec<u8>>,
}

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
        Ok(sqlx::query_as::<_, ExportRow>(
            "SELECT c.contact_id, c.kind, c.nick_name, c.remark_name, c.alias, c.signature,
                    c.province, c.city, c.sex, c.avatar_sha256, a.mime AS avatar_mime,
                    CASE WHEN ?4 THEN a.image END AS avatar
             FROM contacts c LEFT JOIN avatars a ON a.sha256 = c.avatar_sha256
             WHERE c.deleted_at IS NULL AND (c.kind = 'friend' OR (?1 AND c.kind = 'group'))
               AND c.contact_id > ?2
             ORDER BY c.contact_id LIMIT ?3",
        )
        .bind(groups)
        .bind(after_id)
        .bind(limit)
        .bind(images)
        .fetch_all(&self.pool)
        .await?)
    }
}
