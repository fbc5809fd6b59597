//! `GET /openapi.json`: the public API described in OpenAPI 3.1, from the
//! `utoipa::path` attributes on the handlers and the types of their
//! parameters. The peer routes are left out: they are the nodes' own.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{cluster, dashboard, evaluations, node, stream, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "evalmesh",
        description = "Grades Python projects with pytest on a cluster of peer nodes. Every route but `GET /health` \
                       and `GET /` needs a client token (`Authorization: Bearer <token>`) when the nodes have any."
    ),
    paths(
        evaluations::submit,
        evaluations::list,
        evaluations::get,
        evaluations::remove,
        evaluations::events,
        evaluations::grades_csv,
        evaluations::junit_xml,
        stream::stream,
        node::stats,
        node::metrics,
        node::health,
        cluster::network,
        cluster::peers,
        dashboard::page,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "node",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
