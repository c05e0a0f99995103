//! The browser transport: `fetch` from the worker, the body read from its
//! `ReadableStream`, and `AbortSignal.timeout` as the per-attempt limit.

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{HttpRequest, HttpResponse, ResponseBody, Transport, TransportError};

#[derive(Debug, Default, Clone, Copy)]
pub struct FetchTransport;

pub struct FetchBody {
    reader: Option<web_sys::ReadableStreamDefaultReader>,
}

/// Converts a JavaScript error into a transport error, telling a timeout (the
/// `AbortSignal.timeout` firing) apart from any other failure.
fn transport_error(error: JsValue) -> TransportError {
    let name = Reflect::get(&error, &"name".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    if name == "TimeoutError" {
        return TransportError::Timeout;
    }
    let message = Reflect::get(&error, &"message".into())
        .ok()
        .and_then(|v| v.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "fetch failed".into());
    TransportError::Network(if name.is_empty() {
        message
    } else {
        format!("{name}: {message}")
    })
}

impl ResponseBody for FetchBody {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(reader) = &self.reader else {
            return Ok(None);
        };
        let result = JsFuture::from(reader.read())
            .await
            .map_err(transport_error)?;
        let done = Reflect::get(&result, &"done".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            self.reader = None;
            return Ok(None);
        }
        let value = Reflect::get(&result, &"value".into()).map_err(transport_error)?;
        Ok(Some(Uint8Array::new(&value).to_vec()))
    }
}

fn global_function(name: &str) -> Result<Function, TransportError> {
    Reflect::get(&js_sys::global(), &name.into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| TransportError::Network(format!("this browser context has no {name}")))
}

impl Transport for FetchTransport {
    type Body = FetchBody;

    async fn post(&self, request: HttpRequest) -> Result<HttpResponse<FetchBody>, TransportError> {
        let headers = web_sys::Headers::new().map_err(transport_error)?;
        for (name, value) in &request.headers {
            headers.append(name, value).map_err(transport_error)?;
        }

        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_mode(web_sys::RequestMode::Cors);
        init.set_credentials(web_sys::RequestCredentials::Omit);
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&request.body));
        // NOTE: a request the client abandons (cancel) is not aborted here; the browser
        // keeps it open until the server finishes or this timeout fires.
        let timeout =
            web_sys::AbortSignal::timeout_with_u32(request.timeout_ms.min(u32::MAX as u64) as u32);
        init.set_signal(Some(&timeout));

        let fetch = global_function("fetch")?;
        let promise: Promise = fetch
            .call2(&js_sys::global(), &JsValue::from_str(&request.url), &init)
            .map_err(transport_error)?
            .unchecked_into();
        let response: web_sys::Response = JsFuture::from(promise)
            .await
            .map_err(transport_error)?
            .unchecked_into();

        let mut response_headers = Vec::new();
        // Only headers the server exposes to scripts are readable under CORS.
        for name in ["retry-after", "retry-after-ms", "content-type"] {
            if let Ok(Some(value)) = response.headers().get(name) {
                response_headers.push((name.to_string(), value));
            }
        }

        let reader = response.body().map(|stream| {
            stream
                .get_reader()
                .unchecked_into::<web_sys::ReadableStreamDefaultReader>()
        });
        Ok(HttpResponse {
            status: response.status(),
            headers: response_headers,
            body: FetchBody { reader },
        })
    }

    async fn sleep(&self, ms: u64) {
        let Ok(set_timeout) = global_function("setTimeout") else {
            return;
        };
        let promise = Promise::new(&mut |resolve, _| {
            let _ = set_timeout.call2(&js_sys::global(), &resolve, &JsValue::from_f64(ms as f64));
        });
        let _ = JsFuture::from(promise).await;
    }

    fn in_browser(&self) -> bool {
        true
    }
}
