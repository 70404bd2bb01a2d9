//! Optional rate limits per API key, or per client address for requests without
//! one: a GCRA limiter (the `governor` crate) keyed by a digest of the key, so
//! that keys are never held in memory in clear. Off unless
//! `server.rate_limit_per_second` is set; a refused request gets 429 with
//! `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
pub use crate::state::Limiter;

/// The limiter the settings ask for, or `None` when rate limiting is off. A task
/// forgets clients that have been quiet, so the table stays small.
pub fn limiter(per_second: u32, burst: u32) -> Option<Arc<Limiter>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    let limiter = Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)));
    let weak = Arc::downgrade(&limiter);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let Some(limiter) = weak.upgrade() else {
                return;
            };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
    Some(limiter)
}

/// Who a request counts against: its bearer key when it sends one, else its address.
fn client_key(request: &ServiceRequest) -> [u8; 16] {
    let mut hasher = Sha256::new();
    match request.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            hasher.update(b"key:");
            hasher.update(value.as_bytes());
        }
        None => {
            hasher.update(b"addr:");
            hasher.update(request.peer_addr().map(|address| address.ip().to_string()).unwrap_or_default());
        }
    }
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

pub async fn limit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let limiter = request.app_data::<web::Data<AppState>>().and_then(|state| state.limiter.clone());
    let Some(limiter) = limiter else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    match limiter.check_key(&client_key(&request)) {
        Ok(()) => Ok(next.call(request).await?.map_into_left_body()),
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            metrics::counter!("klynge_rate_limited_total").increment(1);
            let error = ApiError::new(ErrorCode::RateLimited, format!("too many requests; retry in {seconds} s"));
            let mut response = actix_web::ResponseError::error_response(&error);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}
