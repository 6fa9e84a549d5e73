//! `wxsync export`: the live friends (and, asked for, groups) as vCard 4.0,
//! CSV or JSON. Rows are read a page at a time, so a big book with its
//! images is never held whole.

mod vcard;

use std::io::Write;

use base64::Engine as _;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::contact::{COLUMNS, Contact, Kind, Value};
use crate::store::{ExportRow, Store};

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Vcard,
    Csv,
    Json,
}

/// Contact columns CSV and JSON leave out: the user name and
/// `encry_chat_room_id` change at every login, the avatar URL dies with the
/// session (its image's name is exported instead), and `raw` is the wire
/// object. Every other column is exported, in declaration order.
const NOT_EXPORTED: &[&str] = &["user_name", "head_img_url", "encry_chat_room_id", "raw"];

/// The exported contact columns of `c`, by name.
fn exported(c: &Contact) -> impl Iterator<Item = (&'static str, Value<'_>)> {
    COLUMNS
        .iter()
        .zip(c.values())
        .filter(|(column, _)| !NOT_EXPORTED.contains(&column.name))
        .map(|(column, value)| (column.name, value))
}

/// The CSV header: `contact_id`, the exported columns, the image's name and
/// type ([`csv_row`] writes the fields in this order).
fn csv_header() -> String {
    let columns = COLUMNS
        .iter()
        .map(|c| c.name)
        .filter(|name| !NOT_EXPORTED.contains(name));
    let names = std::iter::once("contact_id")
        .chain(columns)
        .chain(["avatar_sha256", "avatar_mime"]);
    csv_record(names)
}

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
        Format::Csv => out.write_all(csv_header().as_bytes())?,
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
                    serde_json::to_writer(&mut *out, &JsonRow(row))?;
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
    let contact = &row.contact;
    let mut c = vcard::Card::new();
    c.raw("UID", &uid(row.contact_id));
    if contact.kind == Kind::Group {
        c.raw("KIND", "group");
    }
    let name = if contact.remark_name.is_empty() {
        &contact.nick_name
    } else {
        &contact.remark_name
    };
    c.text("FN", name);
    if !contact.nick_name.is_empty() {
        c.text("NICKNAME", &contact.nick_name);
    }
    if !contact.signature.is_empty() {
        c.text("NOTE", &contact.signature);
    }
    if !contact.province.is_empty() || !contact.city.is_empty() {
        c.compound(
            "ADR",
            &["", "", "", &contact.city, &contact.province, "", ""],
        );
    }
    match contact.sex {
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
    let columns: Vec<String> = exported(&row.contact)
        .map(|(_, value)| match value {
            Value::Text(t) => t.to_owned(),
            Value::Integer(i) => i.to_string(),
        })
        .collect();
    let id = row.contact_id.to_string();
    csv_record(
        std::iter::once(id.as_str())
            .chain(columns.iter().map(String::as_str))
            .chain([
                row.avatar_sha256.as_deref().unwrap_or(""),
                row.avatar_mime.as_deref().unwrap_or(""),
            ]),
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

/// One JSON object: `contact_id`, `uid`, the exported columns, the image's
/// name and type.
struct JsonRow<'a>(&'a ExportRow);

impl Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("contact_id", &row.contact_id)?;
        map.serialize_entry("uid", &uid(row.contact_id))?;
        for (name, value) in exported(&row.contact) {
            match value {
                Value::Text(t) => map.serialize_entry(name, t)?,
                Value::Integer(i) => map.serialize_entry(name, &i)?,
            }
        }
        map.serialize_entry("avatar_sha256", &row.avatar_sha256)?;
        map.serialize_entry("avatar_mime", &row.avatar_mime)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ExportRow {
        let raw = crate::webwx::RawContact {
            user_name: "@alice".into(),
            contact_flag: 3,
            nick_name: "Alice".into(),
            remark_name: "Alice (work), \"A\"".into(),
            signature: "line one\nline two".into(),
            province: "Guangdong".into(),
            city: "Shenzhen".into(),
            sex: 2,
            head_img_url: "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=1&username=@alice".into(),
            ..Default::default()
        };
        ExportRow {
            contact_id: 42,
            contact: Contact::from_raw(&raw, "@me").unwrap(),
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
        r.contact.remark_name.clear();
        assert!(card_has(&super::card(&r), "FN:Alice"));
    }

    fn card_has(card: &str, line: &str) -> bool {
        card.split("\r\n").any(|l| l == line)
    }

    #[test]
    fn csv_fields_with_commas_quotes_or_breaks_are_quoted() {
        assert_eq!(
            csv_header(),
            "contact_id,kind,nick_name,remark_name,alias,signature,province,city,sex,\
             verify_flag,contact_flag,star_friend,member_count,avatar_sha256,avatar_mime\r\n"
        );
        assert_eq!(
            csv_row(&row()),
            "42,friend,Alice,\"Alice (work), \"\"A\"\"\",,\"line one\nline two\",Guangdong,\
             Shenzhen,2,0,3,0,0,ab,image/png\r\n"
        );
    }

    #[test]
    fn json_holds_the_same_fields_and_the_uid_but_no_session_names() {
        let json = serde_json::to_value(JsonRow(&row())).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let header = csv_header();
        let mut expected: Vec<&str> = header.trim_end().split(',').collect();
        expected.push("uid");
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["remark_name"], "Alice (work), \"A\"");
        assert_eq!(json["sex"], 2);
        assert_eq!(json["avatar_mime"], "image/png");
    }
}
