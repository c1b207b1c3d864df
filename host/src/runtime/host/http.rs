//! `http`: outbound requests, answered later in `handle-info` (see
//! [`crate::http`]). The import only checks and records: the calling
//! socket starts the request when the call returns.

use super::HostState;
use crate::http::{Draft, Refused};
use crate::runtime::bindings::imports::http::{Host, HttpError, Request};
use crate::runtime::context::Effect;

static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl From<Refused> for HttpError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::NotGranted(text) => HttpError::NotGranted(text),
            Refused::NotAllowed(text) => HttpError::NotAllowed(text),
            Refused::Limit(text) => HttpError::Limit(text),
            Refused::Invalid(text) => HttpError::Invalid(text),
        }
    }
}

impl Host for HostState {
    fn send(&mut self, request: Request) -> Result<u64, HttpError> {
        let call = self.call();
        let outbound = &call.app.http;
        if !outbound.granted() {
            return Err(HttpError::NotGranted(crate::app::not_granted(crate::app::Capability::Http)));
        }
        let Some(scope) = &call.scope else {
            return Err(HttpError::NotInChannel);
        };
        let max = outbound.limits().max_in_flight_per_channel;
        if scope.http_in_flight >= max {
            crate::app::Figures::count(&call.app.figures.limit_refusals, 1);
            return Err(HttpError::Limit(format!(
                "this channel has {max} requests in flight already (max_http_in_flight_per_channel); send the next when an outcome arrives"
            )));
        }
        let draft = Draft {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        let (request, permit) = outbound.prepare(draft).inspect_err(|refused| {
            if matches!(refused, Refused::Limit(_)) {
                crate::app::Figures::count(&call.app.figures.limit_refusals, 1);
            }
        })?;
        let id = NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(scope) = call.scope.as_mut() {
            scope.http_in_flight += 1;
        }
        call.effects.push(Effect::Http {
            id,
            request: Box::new(request),
            permit,
        });
        Ok(id)
    }
}
