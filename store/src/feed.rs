//! Following the change feed: one stream per reader, the same for every backend — read a
//! page of commits by revision, and when there is none, wait for a wake-up (or a timeout:
//! a missed wake-up delays a reader, never loses a change).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use crate::{Change, Revision, Store, StoreError};

/// Records that commits up to `revision` exist (readers waiting on `last` wake); never moves
/// backwards, whatever order commits and notifications arrive in.
pub(crate) fn publish(last: &tokio::sync::watch::Sender<Revision>, revision: Revision) {
    last.send_if_modified(|l| {
        let newer = revision > *l;
        *l = (*l).max(revision);
        newer
    });
}

/// Commits read per page.
const PAGE: u64 = 256;
/// How long a reader waits for a wake-up before it looks anyway.
const LOOK_ANYWAY: Duration = Duration::from_secs(1);

/// Every change after revision `after`, in order, without gaps, as commits arrive. The stream
/// ends after its first error ([`StoreError::Compacted`]: list again; otherwise retry from the
/// last revision seen).
pub fn watch<S: Store>(store: Arc<S>, after: Revision) -> impl Stream<Item = Result<Change, StoreError>> + Send {
    struct State<S> {
        store: Arc<S>,
        after: Revision,
        ready: VecDeque<Change>,
        failed: bool,
    }
    let state = State { store, after, ready: VecDeque::new(), failed: false };
    futures::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        loop {
            if let Some(c) = st.ready.pop_front() {
                return Some((Ok(c), st));
            }
            match st.store.changes(st.after, PAGE).await {
                Ok(page) if page.is_empty() => st.store.wait_after(st.after, LOOK_ANYWAY).await,
                Ok(page) => {
                    st.after = page.last().map_or(st.after, |c| c.revision);
                    st.ready.extend(page);
                }
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
}
