//! What a fetched avatar body is: an image of one of the four types the
//! cache keeps, complete, and small enough — or why it is refused.

use std::fmt;

/// Bodies over this many bytes are refused (a real avatar is a few KiB).
pub const MAX_BYTES: u64 = 1024 * 1024;

/// Why a body is not stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// No bytes at all: the live server's answer without the session's
    /// cookies, and now and then with them.
    Empty,
    /// The bytes start like none of JPEG, PNG, GIF or WebP.
    NotImage,
    /// An image whose end is missing (the transfer was cut short).
    Truncated(&'static str),
    /// Over [`MAX_BYTES`].
    TooLarge,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Empty => f.write_str("the server sent an empty body"),
            Refusal::NotImage => f.write_str("the server sent something that is not an image"),
            Refusal::Truncated(mime) => write!(f, "the server sent an incomplete {mime}"),
            Refusal::TooLarge => f.write_str("the server sent an image over 1 MiB"),
        }
    }
}

/// The MIME type of a complete JPEG, PNG, GIF or WebP image, judged from
/// its signature and its end marker (the whole image is not decoded).
pub fn check(bytes: &[u8]) -> Result<&'static str, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Refusal::TooLarge);
    }
    let (mime, complete) = if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        // EOI.
        ("image/jpeg", bytes.ends_with(&[0xff, 0xd9]))
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        // The IEND chunk: empty, with its fixed CRC.
        (
            "image/png",
            bytes.ends_with(b"\0\0\0\0IEND\xae\x42\x60\x82"),
        )
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        // The trailer byte.
        ("image/gif", bytes.len() > 13 && bytes.ends_with(b";"))
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        // The RIFF size counts everything after its own 8 bytes.
        let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        ("image/webp", size + 8 == bytes.len())
    } else {
        return Err(Refusal::NotImage);
    };
    if complete {
        Ok(mime)
    } else {
        Err(Refusal::Truncated(mime))
    }
}

/// Lowercase hex of the SHA-256 of `bytes`: the image's name in `avatars`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, a JFIF header, EOI: what the checks look at.
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\x01\0H\0H\0\0\xff\xd9";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\0IEND\xae\x42\x60\x82";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";

    fn webp() -> Vec<u8> {
        let mut w =
            b"RIFF\0\0\0\0WEBPVP8L\x0a\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0"
                .to_vec();
        let size = u32::try_from(w.len() - 8).unwrap();
        w[4..8].copy_from_slice(&size.to_le_bytes());
        w
    }

    #[test]
    fn the_four_types_are_told_by_their_bytes() {
        assert_eq!(check(JPEG), Ok("image/jpeg"));
        assert_eq!(check(PNG), Ok("image/png"));
        assert_eq!(check(GIF), Ok("image/gif"));
        assert_eq!(check(&webp()), Ok("image/webp"));
    }

    #[test]
    fn empty_foreign_cut_and_oversized_bodies_are_refused_with_the_reason() {
        assert_eq!(check(b""), Err(Refusal::Empty));
        assert_eq!(check(b"<html>502</html>"), Err(Refusal::NotImage));
        assert_eq!(
            check(br#"{"BaseResponse":{"Ret":1101}}"#),
            Err(Refusal::NotImage)
        );
        assert_eq!(
            check(&JPEG[..JPEG.len() / 2]),
            Err(Refusal::Truncated("image/jpeg"))
        );
        assert_eq!(
            check(&PNG[..PNG.len() - 3]),
            Err(Refusal::Truncated("image/png"))
        );
        assert_eq!(
            check(&GIF[..GIF.len() - 1]),
            Err(Refusal::Truncated("image/gif"))
        );
        let w = webp();
        assert_eq!(
            check(&w[..w.len() - 2]),
            Err(Refusal::Truncated("image/webp"))
        );
        let mut big = JPEG.to_vec();
        big.splice(2..2, std::iter::repeat_n(0u8, 1024 * 1024));
        assert_eq!(check(&big), Err(Refusal::TooLarge));
    }

    #[test]
    fn the_name_is_the_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
