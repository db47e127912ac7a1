//! Turning `ApiError` into Docker's error response: `{"message":"…"}` with the exact JSON content type.

use crate::types::ApiError;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The content type the docker CLI compares with `==` before it decodes an error body.
pub const JSON: &str = "application/json";

/// Newtype so handlers can `?` an `ApiError` into an HTTP response (orphan rule).
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        error_response(status, &self.0.message)
    }
}

/// A `{"message":…}` response with the given status.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// A JSON response with the given status and value.
pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            // Go's encoder ends every value with a newline; some scripts rely on it.
            body.push(b'\n');
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
            resp
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding response: {e}"),
        ),
    }
}

/// Handler result: a response or an API error.
pub type HttpResult = Result<Response, HttpError>;
