//! One turn of an actor: polling a handler or hook future with the actor marked as running on
//! this thread (so its sends are stamped with its id and epoch) and with panics caught.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;

use crate::current::{self, Running};

/// Runs `fut` to completion as a turn of `running`; a panic becomes `Err(message)`.
#[inline]
pub(crate) async fn turn<F: Future>(running: Running, fut: F) -> Result<F::Output, String> {
    let mut fut = pin!(fut);
    poll_fn(move |cx| {
        let previous = current::enter(Some(running));
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        current::enter(previous);
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    })
    .await
}

/// Runs a plain closure as a turn (for factories); a panic becomes `Err(message)`.
pub(crate) fn turn_sync<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
