//! webwx
