//! `GET /`: the dashboard, one page built into the binary (`dashboard.html`,
//! nothing fetched from elsewhere). It holds no data: its script reads the
//! public API with the client token the user types in, kept in the
//! browser's local storage, so the page itself needs none.

use actix_web::http::header;
use actix_web::HttpResponse;

const PAGE: &str = include_str!("dashboard.html");

#[utoipa::path(get, path = "/", tag = "node",
    responses((status = 200, description = "The dashboard, without a token", content_type = "text/html", body = String)))]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // Its own script and style, its own API, and blob: for the CSV download.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
             img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(PAGE)
}
