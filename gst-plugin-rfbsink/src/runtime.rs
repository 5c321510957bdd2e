// The plugin's one tokio runtime: every element instance's servers and client tasks run on it.

use std::sync::LazyLock;

use tokio::runtime::Runtime;

pub static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rfbsink-runtime")
        .enable_all()
        .build()
        .expect("rfbsink: cannot start the tokio runtime")
});
