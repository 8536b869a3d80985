//! The work queue of Applications to reconcile, as a controller's: an Application queued
//! several times is reconciled once; one being reconciled is never reconciled by two workers
//! at once (a wake-up meanwhile queues it again for when it is done); at most `concurrency`
//! run at a time; a wake-up can be scheduled for later (a retry, a self-heal backoff).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use bosun_process::AbortOnDrop;

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    running: HashSet<String>,
    /// Woken while running: queued again when done.
    again: HashSet<String>,
    /// One pending timer per Application.
    timers: HashMap<String, (tokio::time::Instant, AbortOnDrop<()>)>,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
}

impl Queue {
    /// Asks for a pass over `app` as soon as a worker is free.
    pub fn push(&self, app: &str) {
        let mut st = self.state.lock();
        if st.running.contains(app) {
            st.again.insert(app.to_string());
            return;
        }
        if st.queued.insert(app.to_string()) {
            st.ready.push_back(app.to_string());
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Asks for a pass over `app` after `delay`, replacing a later timer (an earlier one
    /// stands: it will look at the Application and set the next).
    pub fn push_after(self: &Arc<Self>, app: &str, delay: Duration) {
        let at = tokio::time::Instant::now() + delay;
        let mut st = self.state.lock();
        if st.timers.get(app).is_some_and(|(t, h)| *t <= at && !h.0.is_finished()) {
            return;
        }
        let me = Arc::downgrade(self);
        let name = app.to_string();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(q) = me.upgrade() {
                q.state.lock().timers.remove(&name);
                q.push(&name);
            }
        });
        st.timers.insert(app.to_string(), (at, AbortOnDrop(task)));
    }

    /// Forgets a pending timer (the Application left).
    pub fn cancel_timer(&self, app: &str) {
        self.state.lock().timers.remove(app);
    }

    fn take(&self) -> Option<String> {
        let mut st = self.state.lock();
        let app = st.ready.pop_front()?;
        st.queued.remove(&app);
        st.running.insert(app.clone());
        Some(app)
    }

    fn done(&self, app: &str) {
        let again = {
            let mut st = self.state.lock();
            st.running.remove(app);
            st.again.remove(app)
        };
        if again {
            self.push(app);
        }
    }

    /// Runs `work` for queued Applications forever, at most `concurrency` at a time.
    pub async fn run<F, Fut>(self: Arc<Self>, concurrency: usize, work: F)
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let work = Arc::new(work);
        loop {
            let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
            let app = loop {
                // Registered before looking, so a push in between is not missed.
                let notified = self.notify.notified();
                if let Some(app) = self.take() {
                    break app;
                }
                notified.await;
            };
            let me = self.clone();
            let work = work.clone();
            tokio::spawn(async move {
                work(app.clone()).await;
                drop(permit);
                me.done(&app);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn an_application_queued_twice_runs_once_and_one_running_is_queued_again() {
        let q = Queue::default();
        q.push("a");
        q.push("b");
        q.push("a");
        assert_eq!(q.take().as_deref(), Some("a"));
        // Woken while running: not handed out again until done.
        q.push("a");
        assert_eq!(q.take().as_deref(), Some("b"));
        assert_eq!(q.take(), None);
        q.done("a");
        assert_eq!(q.take().as_deref(), Some("a"));
        q.done("a");
        q.done("b");
        assert_eq!(q.take(), None);
    }

    #[tokio::test]
    async fn workers_are_bounded_and_an_application_never_runs_twice_at_once() {
        let q = Arc::new(Queue::default());
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let per_app: Arc<Mutex<HashMap<String, usize>>> = Default::default();
        let (r, p, d, pa) = (running.clone(), peak.clone(), done.clone(), per_app.clone());
        let runner = AbortOnDrop(tokio::spawn(q.clone().run(3, move |app: String| {
            let (r, p, d, pa) = (r.clone(), p.clone(), d.clone(), pa.clone());
            async move {
                {
                    let mut m = pa.lock();
                    let n = m.entry(app.clone()).or_default();
                    *n += 1;
                    assert_eq!(*n, 1, "{app} runs twice at once");
                }
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                *pa.lock().get_mut(&app).unwrap() -= 1;
                d.fetch_add(1, Ordering::SeqCst);
            }
        })));
        for i in 0..40 {
            q.push(&format!("app-{}", i % 10));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::SeqCst) < 10 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(done.load(Ordering::SeqCst) >= 10);
        assert!(peak.load(Ordering::SeqCst) <= 3, "peak {}", peak.load(Ordering::SeqCst));
        drop(runner);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_wakes_later_and_an_earlier_one_stands() {
        let q = Arc::new(Queue::default());
        q.push_after("a", Duration::from_secs(10));
        q.push_after("a", Duration::from_secs(20));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(q.take().as_deref(), Some("a"));
        q.done("a");
        q.push_after("b", Duration::from_secs(30));
        q.push_after("b", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(q.take().as_deref(), Some("b"));
    }
}
