//! `wxsync export`: the live friends (and, asked for, groups) as vCard 4.0,
//! CSV or JSON. Rows are read a page at a time, so a big book with its
//! images is never held whole.

mod vcard;

use std::io::Write;

use base64::Engine as _;
use serde::Serialize;

use crate::store::{ExportRow, Store};

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Vcard,
    Csv,
    Json,
}

/// The CSV header; [`csv_record`] writes the fields in this order.
const CSV_HEADER: &[&str] = &[
    "contact_id",
    "kind",
    "nick_name",
    "remark_name",
    "alias",
    "signature",
    "province",
    "city",
    "sex",
    "avatar_sha256",
    "avatar_mime",
];

/// Rows read per query.
const PAGE: i64 = 500;

/// Writes the export to `out`; returns how many contacts it holds.
pub async fn export(
    store: &Store,
    format: Format,
    groups: bool,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut written = 0u64;
    match format {
        Format::Csv => out.write_all(csv_record(CSV_HEADER.iter().copied()).as_bytes())?,
        Format::Json => out.write_all(b"[")?,
        Format::Vcard => {}
    }
    loop {
        let page = store
            .export_page(groups, after, PAGE, format == Format::Vcard)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.contact_id;
        for row in &page {
            match format {
                Format::Vcard => out.write_all(card(row).as_bytes())?,
                Format::Csv => out.write_all(csv_row(row).as_bytes())?,
                Format::Json => {
                    if written > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(b"\n")?;
                    serde_json::to_writer(&mut *out, &JsonRow::from(row))?;
                }
            }
            written += 1;
        }
    }
    if format == Format::Json {
        out.write_all(b"\n]\n")?;
    }
    out.flush()?;
    Ok(written)
}

/// A UID from the `contact_id` alone: the same contact gets the same UID in
/// every export, across logins, so an address book updates its card
/// instead of adding a second one. (A UUID in the shape of version 8,
/// from the SHA-256 of a fixed text and the id.)
pub fn uid(contact_id: i64) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("wxsync contact {contact_id}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// One vCard: FN (remark, else nick name), NICKNAME, NOTE (signature), ADR
/// (city, province), GENDER, KIND for a group, PHOTO as a data URI.
fn card(row: &ExportRow) -> String {
    let mut c = vcard::Card::new();
    c.raw("UID", &uid(row.contact_id));
    if row.kind == "group" {
        c.raw("KIND", "group");
    }
    let name = if row.remark_name.is_empty() {
        &row.nick_name
    } else {
        &row.remark_name
    };
    c.text("FN", name);
    if !row.nick_name.is_empty() {
        c.text("NICKNAME", &row.nick_name);
    }
    if !row.signature.is_empty() {
        c.text("NOTE", &row.signature);
    }
    if !row.province.is_empty() || !row.city.is_empty() {
        c.compound("ADR", &["", "", "", &row.city, &row.province, "", ""]);
    }
    match row.sex {
        1 => c.raw("GENDER", "M"),
        2 => c.raw("GENDER", "F"),
        _ => {}
    }
    if let (Some(mime), Some(image)) = (&row.avatar_mime, &row.avatar) {
        let data = base64::engine::general_purpose::STANDARD.encode(image);
        c.raw("PHOTO", &format!("data:{mime};base64,{data}"));
    }
    c.finish()
}

fn csv_row(row: &ExportRow) -> String {
    let id = row.contact_id.to_string();
    let sex = row.sex.to_string();
    csv_record(
        [
            id.as_str(),
            &row.kind,
            &row.nick_name,
            &row.remark_name,
            &row.alias,
            &row.signature,
            &row.province,
            &row.city,
            &sex,
            row.avatar_sha256.as_deref().unwrap_or(""),
            row.avatar_mime.as_deref().unwrap_or(""),
        ]
        .into_iter(),
    )
}

/// One CSV record (RFC 4180): a field with a comma, a quote or a line break
/// is quoted, quotes doubled; CRLF at the end.
fn csv_record<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for (i, f) in fields.enumerate() {
        if i > 0 {
            line.push(',');
        }
        if f.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(f);
        }
    }
    line.push_str("\r\n");
    line
}

#[derive(Serialize)]
struct JsonRow<'a> {
    contact_id: i64,
    uid: String,
    kind: &'a str,
    nick_name: &'a str,
    remark_name: &'a str,
    alias: &'a str,
    signature: &'a str,
    province: &'a str,
    city: &'a str,
    sex: i64,
    avatar_sha256: Option<&'a str>,
    avatar_mime: Option<&'a str>,
}

impl<'a> From<&'a ExportRow> for JsonRow<'a> {
    fn from(r: &'a ExportRow) -> Self {
        JsonRow {
            contact_id: r.contact_id,
            uid: uid(r.contact_id),
            kind: &r.kind,
            nick_name: &r.nick_name,
            remark_name: &r.remark_name,
            alias: &r.alias,
            signature: &r.signature,
            province: &r.province,
            city: &r.city,
            sex: r.sex,
            avatar_sha256: r.avatar_sha256.as_deref(),
            avatar_mime: r.avatar_mime.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ExportRow {
        ExportRow {
            contact_id: 42,
            kind: "friend".into(),
            nick_name: "Alice".into(),
            remark_name: "Alice (work), \"A\"".into(),
            alias: String::new(),
            signature: "line one\nline two".into(),
            province: "Guangdong".into(),
            city: "Shenzhen".into(),
            sex: 2,
            avatar_sha256: Some("ab".into()),
            avatar_mime: Some("image/png".into()),
            avatar: Some(vec![1, 2, 3]),
        }
    }

    #[test]
    fn the_uid_follows_the_contact_id_only() {
        assert_eq!(uid(42), uid(42));
        assert_ne!(uid(42), uid(43));
        let u = uid(42);
        assert!(u.starts_with("urn:uuid:") && u.len() == 9 + 36, "{u}");
        assert_eq!(&u[9 + 14..9 + 15], "8", "{u}");
    }

    #[test]
    fn a_card_names_the_contact_by_remark_and_carries_its_photo() {
        let card = card(&row());
        let lines: Vec<&str> = card.split("\r\n").collect();
        assert!(lines.contains(&"FN:Alice (work)\\, \"A\""), "{card}");
        assert!(lines.contains(&"NICKNAME:Alice"), "{card}");
        assert!(lines.contains(&"NOTE:line one\\nline two"), "{card}");
        assert!(lines.contains(&"ADR:;;;Shenzhen;Guangdong;;"), "{card}");
        assert!(lines.contains(&"GENDER:F"), "{card}");
        assert!(
            lines.contains(&"PHOTO:data:image/png;base64,AQID"),
            "{card}"
        );
        assert!(
            lines.contains(&format!("UID:{}", uid(42)).as_str()),
            "{card}"
        );
        let mut r = row();
        r.remark_name.clear();
        assert!(card_has(&super::card(&r), "FN:Alice"));
    }

    fn card_has(card: &str, line: &str) -> bool {
        card.split("\r\n").any(|l| l == line)
    }

    #[test]
    fn csv_fields_with_commas_quotes_or_breaks_are_quoted() {
        assert_eq!(
            csv_row(&row()),
            "42,friend,Alice,\"Alice (work), \"\"A\"\"\",,\"line one\nline two\",Guangdong,Shenzhen,2,ab,image/png\r\n"
        );
    }
}
