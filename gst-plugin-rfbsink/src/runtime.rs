// SPDX-License-Identifier: MPL-2.0

//! The plugin's one tokio runtime: every element instance's servers and client tasks run on it.

use std::future::Future;
use std::sync::LazyLock;

use tokio::runtime::Runtime;

pub(crate) static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rfbsink-runtime")
        .enable_all()
        .build()
        .expect("rfbsink: cannot start the tokio runtime")
});

/// Runs `future` to completion on the runtime from any thread. A thread of a runtime (this one,
/// e.g. a sync bus handler reacting to an element message, or an application's) must not block
/// on a runtime, so from there the wait happens on a short-lived thread of its own.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return RUNTIME.block_on(future);
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("rfbsink-stop".into())
            .spawn_scoped(scope, || RUNTIME.block_on(future))
            .expect("cannot start a thread")
            .join()
            .expect("the waiting thread panicked")
    })
}
