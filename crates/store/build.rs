//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! migration files, and cargo only watches the files it knows of.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
