// `sqlx::migrate!` embeds migrations with include_str!, which does not notice a
// newly added file; this makes cargo rebuild when the folder changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
