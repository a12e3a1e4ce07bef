//! The console's static files, compiled into the binary and served under names that carry
//! a hash of their content (`console.3f9a….css`), so a browser may keep them forever and a
//! new build is fetched at once. `crates/coffer/assets/` holds the sources; htmx is
//! vendored unmodified (`assets/vendor/`, with its licence).

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// One embedded file: its served name, content type and bytes.
#[derive(Debug)]
pub struct Asset {
    pub name: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The console's files, each under its hashed name.
#[derive(Debug)]
pub struct Assets {
    pub css: Asset,
    pub script: Asset,
    pub htmx: Asset,
    pub icon: Asset,
}

impl Assets {
    /// The files, hashed once per process.
    pub fn get() -> &'static Assets {
        static ASSETS: OnceLock<Assets> = OnceLock::new();
        ASSETS.get_or_init(|| Assets {
            css: Asset::new(
                "console",
                "css",
                "text/css; charset=utf-8",
                include_bytes!("../../assets/console.css"),
            ),
            script: Asset::new(
                "console",
                "js",
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/console.js"),
            ),
            htmx: Asset::new(
                "htmx-2.0.11",
                "js",
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
            ),
            icon: Asset::new("icon", "svg", "image/svg+xml", include_bytes!("../../assets/icon.svg")),
        })
    }

    fn find(&self, name: &str) -> Option<&Asset> {
        [&self.css, &self.script, &self.htmx, &self.icon].into_iter().find(|asset| asset.name == name)
    }
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let name = format!("{stem}.{}.{extension}", hex::encode(&digest[..6]));
        Self { name, content_type, bytes }
    }

    /// The path the pages link to.
    pub fn path(&self) -> String {
        format!("/app/assets/{}", self.name)
    }
}

/// `GET /app/assets/{name}`: the file, cacheable for a year (its name changes with it).
pub async fn serve(Path(name): Path<String>) -> Response {
    match Assets::get().find(&name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
