//! The request timeout (`server.request_timeout_ms`): a request whose answer has not
//! begun within it is answered `DEADLINE_EXCEEDED`, as a gRPC deadline is, and whatever
//! was working on it is dropped. A stream's answer begins with its headers; the stream
//! then runs as long as it runs.
//!
//! tonic's own server timeout answers `CANCELLED`, which tells a client that someone gave
//! up rather than that the server's time ran out; and it sits outside the metrics layer,
//! which would count such a request as cancelled by its client. This layer sits inside it.
//! (A client's own `grpc-timeout` is still tonic's to enforce; the client's deadline
//! expires with it and reports `DEADLINE_EXCEEDED` on its side.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::status;
use http_body::Body as HttpBody;
use tokio::time::Sleep;
use tonic::body::Body;
use tonic::codegen::{http, Bytes, Service};

/// Answers `DEADLINE_EXCEEDED` when a request's answer has not begun within `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    /// `server.request_timeout_ms`.
    pub timeout: Duration,
}

impl<S> tower_layer::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<http::Request<Body>> for Deadline<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Timed {
            inner: self.inner.call(request),
            expired: tokio::time::sleep(self.timeout),
            timeout: self.timeout,
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer on its way, and when it is too late.
    pub struct Timed<F> {
        #[pin]
        inner: F,
        #[pin]
        expired: Sleep,
        timeout: Duration,
    }
}

impl<F, B, E> Future for Timed<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.inner.poll(context) {
            return Poll::Ready(answer.map(|response| response.map(Body::new)));
        }
        std::task::ready!(this.expired.poll(context));
        let status = status::deadline_exceeded(
            "server.request_timeout_ms",
            format!("no answer within {} ms", this.timeout.as_millis()),
        );
        Poll::Ready(Ok(status.into_http()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;
    use tower_layer::Layer;

    /// Answers `OK` after `delay`.
    #[derive(Clone)]
    struct Slow {
        delay: Duration,
    }

    impl Service<http::Request<Body>> for Slow {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(Status::ok("").into_http())
            })
        }
    }

    fn code(response: &http::Response<Body>) -> Option<&str> {
        response
            .headers()
            .get(Status::GRPC_STATUS)
            .and_then(|value| value.to_str().ok())
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_is_deadline_exceeded_naming_the_setting_and_a_timely_one_passes() {
        let layer = DeadlineLayer {
            timeout: Duration::from_millis(100),
        };
        let mut late = layer.layer(Slow {
            delay: Duration::from_secs(5),
        });
        let started = tokio::time::Instant::now();
        let answer = late
            .call(http::Request::new(Body::empty()))
            .await
            .expect("answered");
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(code(&answer), Some("4"), "DEADLINE_EXCEEDED");
        let message = answer
            .headers()
            .get("grpc-message")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert!(message.contains("server.request_timeout_ms"), "{message}");

        let mut timely = layer.layer(Slow {
            delay: Duration::from_millis(99),
        });
        let answer = timely
            .call(http::Request::new(Body::empty()))
            .await
            .expect("answered");
        assert_eq!(code(&answer), Some("0"), "OK");
    }
}
