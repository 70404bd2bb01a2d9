//! The OpenAPI document, generated from the handlers' annotations, and the
//! Swagger UI page whose assets are compiled into the binary (the `vendored`
//! feature), so `/docs` works offline.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::api::contract::Contract;
use crate::api::{collaborations, feedback, firms, health, jobs, networks, recommend};

#[derive(OpenApi)]
#[openapi(
    info(title = "klynge", description = "Matchmaking for business clusters: firm profiles, partner shortlists and value-chain networks."),
    paths(
        firms::bulk_upsert, firms::put, firms::get, firms::delete, firms::search,
        collaborations::create, collaborations::get,
        recommend::partners, recommend::shortlist, recommend::model,
        networks::create, networks::around, jobs::train, jobs::refresh, jobs::get,
        feedback::create, feedback::list, feedback::get, feedback::delete,
        health::live, health::ready, health::metrics,
    ),
    modifiers(&BearerAuth, &Contract),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/docs",
            web::get()
                .to(|| async { HttpResponse::PermanentRedirect().insert_header(("location", "/docs/")).finish() }),
        )
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()));
}
