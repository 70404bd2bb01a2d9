//! The cluster manager's console: one page at `/` and its script and style,
//! plus the drawing library it uses (cytoscape, MIT, vendored from its npm
//! package with its licence), all compiled into the binary so the console works
//! offline and loads nothing from another host. It is a client of the public
//! `/v1` API like any portal, so it sits outside the `/v1` scope and stays open
//! when read keys are set (the page itself asks for a key when the API answers 401).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");
/// cytoscape 3.35.0's `dist/cytoscape.min.js`, unchanged (see `src/console/vendor/README.md`).
const CYTOSCAPE_JS: &str = include_str!("../console/vendor/cytoscape.min.js");
const CYTOSCAPE_LICENSE: &str = include_str!("../console/vendor/cytoscape.LICENSE");

/// Only this origin may serve scripts, styles and data to the page: a stray
/// reference to another host is refused by the browser, not silently fetched.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/console/app.js", web::get().to(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/console/app.css", web::get().to(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route(
            "/console/vendor/cytoscape.min.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", CYTOSCAPE_JS) }),
        )
        .route(
            "/console/vendor/cytoscape.LICENSE",
            web::get().to(|| async { asset("text/plain; charset=utf-8", CYTOSCAPE_LICENSE) }),
        );
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // Revalidated on every load so a new binary's console is never mixed with an old one's.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}
