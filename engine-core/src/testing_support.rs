//! Helpers shared by unit tests in several modules: a watchdog so that a hang fails a test instead
//! of stalling CI.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Runs `f` on its own thread and returns its result, failing the test if it takes longer than
/// `limit`. A hung thread is left behind (it cannot be killed); the test binary exits regardless.
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("test-within".into())
        .spawn(move || {
            // The receiver only goes away after a timeout, when nobody wants the value.
            let _ = tx.send(f());
        })
        .expect("spawn the test thread");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(RecvTimeoutError::Timeout) => panic!("timed out (hang?) after {limit:?}"),
        // The sender was dropped without sending: `f` panicked; re-raise its panic here.
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test thread ended without a value or a panic"),
        },
    }
}
