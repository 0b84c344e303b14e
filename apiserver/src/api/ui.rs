//! The dashboard at `/ui/`: static assets embedded in the binary (no Node
//! build, no CDN) that talk to the REST API with the user's bearer token.
//! The assets are public (they hold no data); every object they show comes
//! through `/apis/...`, so authentication and RBAC apply there.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// An asset of apiserver/ui/, embedded.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

/// Everything the dashboard is made of (apiserver/ui/).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("views.js", "text/javascript; charset=utf-8"),
    asset!("dag.js", "text/javascript; charset=utf-8"),
    asset!("actions.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Scripts and styles only from this origin (no inline code), requests
/// only to this origin, and the page may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes, for any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
        )
}

/// An asset by name, or 404; 304 when the browser's copy is current.
fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, security_headers(), "not found\n").into_response();
    };
    let etag = etag(asset.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let etag_header = [(header::ETAG, etag)];
    if fresh {
        return (StatusCode::NOT_MODIFIED, security_headers(), etag_header).into_response();
    }
    (
        security_headers(),
        etag_header,
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.body,
    )
        .into_response()
}

/// Headers on every dashboard response. `no-cache`: the browser keeps the
/// files but revalidates them (by ETag), so an upgraded server is seen at
/// the next load.
fn security_headers() -> [(header::HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

/// A strong validator of an asset's bytes (FNV-1a: stable across builds and
/// processes, unlike std's randomly keyed hasher).
fn etag(body: &[u8]) -> String {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_its_assets_and_has_no_inline_code() {
        let index = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        assert!(index.contains(r#"href="style.css""#));
        assert!(index.contains(r#"src="app.js""#));
        // The CSP allows no inline script or style.
        assert!(!index.contains("<script>"));
        assert!(!index.contains("<style"));
        assert!(!index.contains("style="));
        // Every module the page imports is served.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for import in text.lines().filter_map(|l| l.split("from \"./").nth(1)) {
                let name = import.split('"').next().unwrap_or_default();
                assert!(ASSETS.iter().any(|a| a.name == name), "{name} not embedded");
            }
        }
    }

    #[test]
    fn etags_differ_by_content_and_are_quoted() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
        assert!(etag(b"").starts_with('"') && etag(b"").ends_with('"'));
    }

    #[test]
    fn unknown_assets_are_not_found_and_known_ones_revalidate() {
        let none = HeaderMap::new();
        assert_eq!(
            serve("../Cargo.toml", &none).status(),
            StatusCode::NOT_FOUND
        );
        let ok = serve("app.js", &none);
        assert_eq!(ok.status(), StatusCode::OK);
        let tag = ok.headers()[header::ETAG].clone();
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(serve("app.js", &again).status(), StatusCode::NOT_MODIFIED);
    }
}
