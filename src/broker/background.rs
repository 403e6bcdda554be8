//! The broker's background thread: one per broker, named `streamlog-broker-<id>`, running
//! a job every interval until stopped. It waits on a condition variable with a timeout
//! (real time), so stopping — on [`crate::Broker::close`] or drop — wakes it at once
//! rather than after the interval; a job already running is finished first.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::clock::deadline_after;
use crate::error::{Error, Result};

/// A thread running a job every interval; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts thread `name`, which runs `job` once every `interval` until stopped.
    pub(crate) fn start(
        name: String,
        interval: Duration,
        mut job: impl FnMut() + Send + 'static,
    ) -> Result<Background> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                loop {
                    let deadline = deadline_after(interval);
                    let mut stopped = stopped.lock();
                    while !*stopped && Instant::now() < deadline {
                        wake.wait_until(&mut stopped, deadline);
                    }
                    if *stopped {
                        return;
                    }
                    drop(stopped);
                    job();
                }
            })
            .map_err(|e| Error::io(name, e))?;
        Ok(Background {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it; idempotent.
    pub(crate) fn stop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
        if let Some(handle) = self.handle.take() {
            // A job that panicked has nothing more to report.
            let _ = handle.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn the_job_runs_every_interval_until_stopped() {
        let (tx, rx) = mpsc::channel();
        let mut background = Background::start("t".into(), Duration::from_millis(1), move || {
            let _ = tx.send(());
        })
        .unwrap();
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        background.stop();
        while rx.try_recv().is_ok() {}
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    }

    #[test]
    fn stopping_wakes_a_thread_waiting_out_a_long_interval() {
        let started = Instant::now();
        let background = Background::start("t".into(), Duration::from_secs(3600), || {}).unwrap();
        drop(background);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
