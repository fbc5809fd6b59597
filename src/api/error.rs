//! `ApiError`: the one error type the HTTP layer answers with, always as JSON
//! `{"error": "..."}` with its status code.

use actix_web::http::header::{self, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // Client errors.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A peer route called without a valid signature.
    #[error("{0}")]
    Unauthorized(String),
    /// A public route called without a valid client token, when tokens are on.
    #[error("{0}")]
    BearerRequired(String),
    /// A client token that may not do this (a student's).
    #[error("{0}")]
    Forbidden(String),
    /// The resource is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    TooLarge(String),
    #[error("unsupported content type {0:?}: send multipart/form-data with a file field, application/zip, or application/json")]
    UnsupportedMediaType(String),
    // Server errors.
    #[error("{0}")]
    Unavailable(String),
    /// The node takes no more work now; the answer says when to try again.
    #[error("{reason}: retry after {retry_after_s} s")]
    Busy { reason: String, retry_after_s: u64 },
    // Internal errors: logged where they happen, answered without server detail.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Logs a server-side failure with its context and hides its detail from the client.
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        log::error!("{context}: {e}");
        Self::Internal(context.to_owned())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) | Self::BearerRequired(_) => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } | Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Busy { retry_after_s, .. } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
        }
        if let Self::BearerRequired(_) = self {
            // RFC 6750 §3: names the scheme the client should use.
            response.insert_header((WWW_AUTHENTICATE, "Bearer realm=\"evalmesh\""));
        }
        response.json(ErrorBody { error: self.to_string() })
    }
}

/// What every error answer holds: the reason, for people.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}
