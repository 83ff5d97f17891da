//! The tower glue: every admission concern is a [`Check`]; [`Guard`] puts one in
//! front of the rest of the stack and is both a [`Check`] and a
//! [`tower::Service`]; [`GuardLayer`] is the [`tower::Layer`] that builds it, so
//! the stack can be assembled with [`tower::ServiceBuilder`].
//!
//! The services are synchronous: `poll_ready` is always `Ready`, and `call`
//! returns a [`std::future::Ready`] holding the verdict, so a caller that cannot
//! await (the sans-IO core) uses [`Check::check`] and gets the same answer.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::{Admit, Verdict};

/// One admission concern, or a whole stack of them: decides about one message.
pub trait Check {
    /// The verdict for `req`. Layers that do not act return [`Verdict::Pass`].
    fn check(&mut self, req: &Admit<'_>) -> Verdict;
}

/// The end of every stack: what got this far is admitted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accept;

impl Check for Accept {
    fn check(&mut self, _req: &Admit<'_>) -> Verdict {
        Verdict::Pass
    }
}

impl<'a> Service<Admit<'a>> for Accept {
    type Response = Verdict;
    type Error = Infallible;
    type Future = Ready<Result<Verdict, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Admit<'a>) -> Self::Future {
        ready(Ok(Verdict::Pass))
    }
}

/// A concern `C` in front of the rest of the stack `S`: `S` sees the message only
/// when `C` passes it.
#[derive(Clone, Debug)]
pub struct Guard<C, S> {
    /// This layer's state.
    pub layer: C,
    /// The rest of the stack.
    pub inner: S,
}

impl<C, S> Guard<C, S> {
    /// `layer` in front of `inner`.
    pub fn new(layer: C, inner: S) -> Self {
        Guard { layer, inner }
    }
}

impl<C: Check, S: Check> Check for Guard<C, S> {
    #[inline]
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        match self.layer.check(req) {
            Verdict::Pass => self.inner.check(req),
            other => other,
        }
    }
}

impl<'a, C: Check, S: Check> Service<Admit<'a>> for Guard<C, S> {
    type Response = Verdict;
    type Error = Infallible;
    type Future = Ready<Result<Verdict, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Admit<'a>) -> Self::Future {
        ready(Ok(self.check(&req)))
    }
}

/// A [`tower::Layer`] that puts a fresh layer state, made by `make`, in front of
/// the service it wraps. The factory (not a clone of live state) keeps two
/// stacks built from one layer from sharing tables by accident.
#[derive(Clone)]
pub struct GuardLayer<F> {
    make: F,
}

impl<F> GuardLayer<F> {
    /// A layer whose state comes from `make()`.
    pub fn new(make: F) -> Self {
        GuardLayer { make }
    }
}

impl<F, C, S> Layer<S> for GuardLayer<F>
where
    F: Fn() -> C,
{
    type Service = Guard<C, S>;

    fn layer(&self, inner: S) -> Guard<C, S> {
        Guard::new((self.make)(), inner)
    }
}

/// Gets the verdict out of a service's ready future without an executor (the
/// futures of this module are always ready). For tests and for callers that hold
/// a `tower::Service` rather than a [`Check`].
pub fn verdict_now<'a, S>(svc: &mut S, req: Admit<'a>) -> Verdict
where
    S: Service<
        Admit<'a>,
        Response = Verdict,
        Error = Infallible,
        Future = Ready<Result<Verdict, Infallible>>,
    >,
{
    match svc.call(req).into_inner() {
        Ok(v) => v,
        Err(never) => match never {},
    }
}
