//! Receives a submission's body: a zip streamed to a file under a size limit
//! while its SHA-256 is computed, or a small JSON body held in memory.

use std::path::Path;

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest};
use futures_util::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use super::ApiError;

/// A zip received to disk; the file is removed when this is dropped.
pub struct Upload {
    pub path: TempPath,
    pub sha256: String,
    /// The client's file name without its extension, when it gave one.
    pub name: Option<String>,
    pub size: u64,
}

/// A multipart submission: the projects, and a reference suite.
pub struct Form {
    pub file: Upload,
    pub tests: Option<Upload>,
}

/// Streams the `file` field of a multipart form to disk, and its `tests`
/// field if it has one; `limit` holds for the two together.
pub async fn multipart(req: &HttpRequest, payload: web::Payload, dir: &Path, limit: u64) -> Result<Form, ApiError> {
    let mut form = Multipart::new(req.headers(), payload);
    let (mut upload, mut tests): (Option<Upload>, Option<Upload>) = (None, None);
    while let Some(field) =
        form.try_next().await.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let used: u64 = upload.iter().chain(tests.iter()).map(|u| u.size).sum();
        let slot = match name.as_str() {
            "file" => &mut upload,
            "tests" => &mut tests,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown form field {name:?}: send the zip in a field named file, and a reference suite's in tests"
                )))
            }
        };
        if slot.is_some() {
            return Err(ApiError::BadRequest(format!("more than one {name} field")));
        }
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .and_then(|f| Path::new(f).file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty());
        let stream = field.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")));
        let mut received = to_file(stream, dir, limit.saturating_sub(used)).await.map_err(|e| match e {
            ApiError::PayloadTooLarge { .. } => ApiError::PayloadTooLarge { limit },
            e => e,
        })?;
        received.name = filename;
        *slot = Some(received);
    }
    let file = upload.ok_or_else(|| ApiError::BadRequest("multipart body has no file field".into()))?;
    Ok(Form { file, tests })
}

/// Streams a raw `application/zip` body to disk.
pub async fn raw(payload: web::Payload, dir: &Path, limit: u64) -> Result<Upload, ApiError> {
    let stream = payload.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")));
    to_file(stream, dir, limit).await
}

/// Reads a JSON body of at most `limit` bytes into memory.
pub async fn json_body(mut payload: web::Payload, limit: u64) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn to_file<S>(mut stream: S, dir: &Path, limit: u64) -> Result<Upload, ApiError>
where
    S: Stream<Item = Result<web::Bytes, ApiError>> + Unpin,
{
    let path = tempfile::Builder::new()
        .prefix("upload-")
        .suffix(".zip")
        .tempfile_in(dir)
        .map_err(|e| ApiError::internal("creating an upload file", e))?
        .into_temp_path();
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .await
        .map_err(|e| ApiError::internal("opening an upload file", e))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        hash.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| ApiError::internal("writing an upload file", e))?;
    }
    file.flush().await.map_err(|e| ApiError::internal("writing an upload file", e))?;
    if size == 0 {
        return Err(ApiError::BadRequest("the zip archive is empty (0 bytes)".into()));
    }
    Ok(Upload { path, sha256: format!("{:x}", hash.finalize()), name: None, size })
}
