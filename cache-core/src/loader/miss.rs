//! The miss path as one small hand-written future per cached function ([`LoadAfterMiss`])
//! around an erased state machine compiled once ([`Miss`]).
//!
//! Why not an `async fn`: the release build of a crate with many cached functions is LLVM's
//! time on the code generated for each of them. An `async fn` here was a coroutine with three
//! await points, a state for each and drop glue for each (≈ 700 lines of LLVM IR per cached
//! function before optimization); this future's `poll` is a short match, and everything that
//! does not depend on the function's types (single flight, the remote read, the lock, the
//! store) is in [`Miss`]'s methods, which are not generic.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{conclude, Begin, Boxed, Lead, LoadOptions, Rule};
use crate::engine::Engine;
use crate::key::Fingerprint;
use crate::l1::Entry;
use crate::perf::FnStats;
use crate::values::{erase, of_entry, ops, AnyValue, CacheValue};

/// The erased part of a miss: begin, then (after the caller's loader) conclude.
pub(crate) struct Miss<'a> {
    state: State<'a>,
}

enum State<'a> {
    Beginning(Boxed<'a, Begin<'a>>),
    /// The caller's loader runs; `None`: no lead to conclude (a found value of another type).
    Loading(Option<Box<Lead<'a>>>),
    Concluding(Boxed<'a, ()>),
    Done,
}

impl<'a> Miss<'a> {
    fn new(
        engine: &'a Engine,
        key: &'a str,
        fp: Fingerprint,
        opts: LoadOptions,
        begin: Begin0,
        tags: &'a [&'a str],
    ) -> Self {
        // Off: the caller's loader runs at once, alone (no single flight either), and nothing
        // is concluded.
        let state = if engine.enabled() {
            State::Beginning(engine.begin(key, fp, opts, begin.ops, begin.stats, tags))
        } else {
            engine.counters.bypassed.incr();
            State::Loading(None)
        };
        Miss { state }
    }

    /// Until the caller's loader must run (`Ready(None)`), or a value was found.
    #[inline(never)]
    fn poll_begin(&mut self, cx: &mut Context<'_>) -> Poll<Option<Found>> {
        let State::Beginning(fut) = &mut self.state else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Begin::Found(entry)) => {
                // A value of another type (unreachable: flights are keyed by type) makes the
                // caller load; there is no lead to conclude then.
                self.state = State::Loading(None);
                Poll::Ready(Some(Found::Entry(entry)))
            }
            Poll::Ready(Begin::Value(value)) => {
                self.state = State::Loading(None);
                Poll::Ready(Some(Found::Value(value)))
            }
            Poll::Ready(Begin::Lead(lead)) => {
                self.state = State::Loading(Some(lead));
                Poll::Ready(None)
            }
        }
    }

    /// Starts concluding the load with the caller's value (`None`: it failed).
    #[inline(never)]
    fn conclude(&mut self, value: Option<(AnyValue, bool)>) {
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::Loading(Some(lead)) => State::Concluding(conclude(lead, value)),
            _ => State::Done,
        };
    }

    /// Enters the load's span while the caller's loader is polled ([`crate::trace`]).
    #[inline]
    fn enter(&self) -> Option<tracing::span::Entered<'_>> {
        match &self.state {
            State::Loading(Some(lead)) => Some(lead.enter()),
            _ => None,
        }
    }

    #[inline(never)]
    fn poll_conclude(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Concluding(fut) = &mut self.state {
            if fut.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.state = State::Done;
        }
        Poll::Ready(())
    }
}

/// A value found without loading.
enum Found {
    /// Shared: cloned out.
    Entry(Entry),
    /// This caller's alone: moved out.
    Value(AnyValue),
}

/// The erased arguments of [`Engine::begin`] that come from the types.
struct Begin0 {
    ops: &'static crate::values::ValueOps,
    stats: Option<&'static FnStats>,
}

pin_project_lite::pin_project! {
    /// Where the caller's part of a miss stands.
    #[project = StageProj]
    enum Stage<F, Fut, R> {
        Begin { load: Option<F> },
        Load { #[pin] fut: Fut },
        Conclude { out: Option<R> },
        Done,
    }
}

pin_project_lite::pin_project! {
    /// The loading path once L1 has missed: [`Miss`] (erased) around the caller's future.
    #[must_use = "futures do nothing unless awaited"]
    pub(crate) struct LoadAfterMiss<'a, T, R, F, Fut, K> {
        miss: Miss<'a>,
        rule: Rule<T, R>,
        keep: Option<K>,
        #[pin]
        stage: Stage<F, Fut, R>,
    }
}

/// The loading path once L1 has missed: single flight, the remote tier, the caller's `load`,
/// the guarded store. `rule` says how the caller's return holds the value; `keep` decides
/// whether a loaded value is stored (not `None` under `skip_none`); the loader's run time goes
/// to `stats`; the value is stored with `tags` ([`crate::tags`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_after_miss<'a, T, R, F, Fut, K>(
    engine: &'a Engine,
    key: &'a str,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: Option<&'static FnStats>,
    tags: &'a [&'a str],
    rule: Rule<T, R>,
    keep: K,
    load: F,
) -> LoadAfterMiss<'a, T, R, F, Fut, K>
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
    K: FnOnce(&T) -> bool,
{
    let begin = Begin0 {
        ops: ops::<T>(),
        stats,
    };
    LoadAfterMiss {
        miss: Miss::new(engine, key, fp, opts, begin, tags),
        rule,
        keep: Some(keep),
        stage: Stage::Begin { load: Some(load) },
    }
}

impl<T, R, F, Fut, K> Future for LoadAfterMiss<'_, T, R, F, Fut, K>
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
    K: FnOnce(&T) -> bool,
{
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let mut this = self.project();
        loop {
            match this.stage.as_mut().project() {
                StageProj::Begin { load } => {
                    let found = match std::task::ready!(this.miss.poll_begin(cx)) {
                        Some(Found::Entry(entry)) => of_entry::<T>(&entry),
                        Some(Found::Value(value)) => value.downcast::<T>().ok().map(|v| *v),
                        None => None,
                    };
                    if let Some(v) = found {
                        this.stage.set(Stage::Done);
                        return Poll::Ready((this.rule.wrap)(v));
                    }
                    match load.take() {
                        Some(load) => this.stage.set(Stage::Load { fut: load() }),
                        None => this.stage.set(Stage::Done),
                    }
                }
                StageProj::Load { fut } => {
                    let entered = this.miss.enter();
                    let r = std::task::ready!(fut.poll(cx));
                    drop(entered);
                    let value = (this.rule.value)(&r).map(|v| {
                        let store = this.keep.take().is_some_and(|keep| keep(v));
                        (erase(v.clone()), store)
                    });
                    this.miss.conclude(value);
                    this.stage.set(Stage::Conclude { out: Some(r) });
                }
                StageProj::Conclude { out } => {
                    std::task::ready!(this.miss.poll_conclude(cx));
                    let out = out.take();
                    this.stage.set(Stage::Done);
                    if let Some(r) = out {
                        return Poll::Ready(r);
                    }
                }
                // Polled after completion: stays pending (never a panic on a request path).
                StageProj::Done => return Poll::Pending,
            }
        }
    }
}
