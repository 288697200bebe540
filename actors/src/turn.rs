//! One turn of an actor: polling a handler or hook future with the actor marked as running on
//! this thread (so its sends are stamped with its id and epoch) and with panics caught.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::current::{self, Running};
use crate::remote::RemoteRoute;

/// A panic caught in an actor's turn: its message, for supervision (which reports it as
/// [`ExitReason::Panicked`](crate::ExitReason::Panicked)) and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Panic(String);

impl Panic {
    /// The panic's message.
    pub(crate) fn into_message(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `fut` to completion as a turn of `running`; a panic becomes `Err`. A link one of its
/// sends queued beyond the bound is noted in `owed` (see [`current::owe_room`]): the actor
/// waits for room on it before its next message.
///
/// A future of its own, holding `fut` where it was built (an `async fn` wrapping it moved it
/// once more, a `memcpy` of the handler's future per message).
#[inline]
pub(crate) fn turn<F: Future>(
    running: Running,
    fut: F,
    owed: &mut Option<Arc<dyn RemoteRoute>>,
) -> Turn<'_, F> {
    Turn { fut, running, owed }
}

pin_project_lite::pin_project! {
    /// The future of [`turn`].
    pub(crate) struct Turn<'a, F> {
        #[pin]
        fut: F,
        running: Running,
        owed: &'a mut Option<Arc<dyn RemoteRoute>>,
    }
}

impl<F: Future> Future for Turn<'_, F> {
    type Output = Result<F::Output, Panic>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let previous = current::enter(Some(*this.running));
        let polled = catch_unwind(AssertUnwindSafe(|| this.fut.as_mut().poll(cx)));
        current::enter(previous);
        // Taken after every poll: the next poll may run on another thread.
        if let Some(route) = current::take_owed_room() {
            **this.owed = Some(route);
        }
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Panic(panic_message(payload.as_ref())))),
        }
    }
}

/// Runs a plain closure as a turn (for factories and state encoders); a panic becomes
/// `Err`.
pub(crate) fn turn_sync<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panic(panic_message(p.as_ref())))
}

/// The message of a panic payload (its text, if it is a string).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
