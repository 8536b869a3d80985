//! Watches as `kube_runtime::watcher` and raw `Api::watch` use them: list-then-watch,
//! streaming lists, bookmarks, timeouts, 410 Gone after compaction, injected drops.

mod common;

use std::time::Duration;

use common::{client, sim};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

fn cm(name: &str, label: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": label}}, "data": {"a": "1"}})).unwrap()
}

async fn next_event<S, K>(s: &mut S, what: &str) -> K
where
    S: futures::Stream<Item = K> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("stream ended before {what}"))
}

#[tokio::test]
async fn watcher_lists_then_follows_and_recovers_from_410_and_drops() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    api.create(&PostParams::default(), &cm("before", "a")).await.unwrap();
    let stream = watcher::watcher(api.clone(), watcher::Config::default().labels("tier")).default_backoff();
    let mut stream = Box::pin(stream);

    let mut initial = Vec::new();
    loop {
        match next_event(&mut stream, "initial list").await.unwrap() {
            Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["before"]);

    api.create(&PostParams::default(), &cm("after", "a")).await.unwrap();
    match next_event(&mut stream, "apply event").await.unwrap() {
        Event::Apply(o) => assert_eq!(o.metadata.name.as_deref(), Some("after")),
        other => panic!("unexpected {other:?}"),
    }

    // The server expires every watch (410 Gone): the watcher re-lists and carries on.
    c.faults().expire_watches();
    c.store().compact();
    api.create(&PostParams::default(), &cm("during", "a")).await.unwrap();
    let mut relisted = Vec::new();
    loop {
        match next_event(&mut stream, "re-list after 410").await {
            Ok(Event::InitApply(o)) => relisted.push(o.metadata.name.unwrap()),
            Ok(Event::InitDone) => break,
            _ => {}
        }
    }
    relisted.sort();
    assert_eq!(relisted, ["after", "before", "during"]);

    // A dropped connection: the watcher resumes from its last resourceVersion.
    c.faults().drop_watches();
    api.delete("before", &DeleteParams::default()).await.unwrap();
    let deleted = loop {
        match next_event(&mut stream, "delete after drop").await {
            Ok(Event::Delete(o)) => break o.metadata.name.unwrap(),
            Ok(_) | Err(_) => continue,
        }
    };
    assert_eq!(deleted, "before");
}

#[tokio::test]
async fn streaming_list_mode_ends_initial_events_with_a_bookmark() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    api.create(&PostParams::default(), &cm("x", "a")).await.unwrap();
    let mut stream =
        Box::pin(watcher::watcher(api.clone(), watcher::Config::default().streaming_lists().labels("tier")));
    let mut initial = Vec::new();
    loop {
        match next_event(&mut stream, "streaming list").await.unwrap() {
            Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["x"]);
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "2"}}))).await.unwrap();
    assert!(matches!(next_event(&mut stream, "modify").await.unwrap(), Event::Apply(_)));
}

#[tokio::test]
async fn raw_watch_semantics() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    let created = api.create(&PostParams::default(), &cm("w", "front")).await.unwrap();
    let rv = created.metadata.resource_version.unwrap();

    // Resuming from a resourceVersion replays what happened after it, then follows.
    api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "2"}}))).await.unwrap();
    let mut s = api.watch(&WatchParams::default().labels("tier=front"), &rv).await.unwrap().boxed();
    match next_event(&mut s, "replayed modify").await.unwrap() {
        WatchEvent::Modified(o) => assert_eq!(o.data.unwrap()["a"], "2"),
        other => panic!("unexpected {other:?}"),
    }
    // An object leaving the selection is a DELETED event for this watch.
    api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "back"}}})))
        .await
        .unwrap();
    assert!(matches!(next_event(&mut s, "left selection").await.unwrap(), WatchEvent::Deleted(_)));

    // Bookmarks carry the resourceVersion the watch has reached.
    let mut b = api
        .watch(&WatchParams { bookmarks: true, ..WatchParams::default().labels("tier=none") }, &rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut b, "bookmark").await.unwrap() {
        WatchEvent::Bookmark(bm) => {
            assert!(bm.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap())
        }
        other => panic!("unexpected {other:?}"),
    }

    // timeoutSeconds ends the stream.
    let t = api.watch(&WatchParams::default().timeout(1), &rv).await.unwrap();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(5), t.try_collect::<Vec<_>>())
        .await
        .expect("stream ends by itself")
        .unwrap();
    assert!(events.iter().all(|e| !matches!(e, WatchEvent::Error(_))));

    // After compaction, an old resourceVersion gets 410 Gone.
    c.store().compact();
    let mut old = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match next_event(&mut old, "410").await.unwrap() {
        WatchEvent::Error(s) => assert_eq!(s.code, 410),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn watch_of_one_object_by_name() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    api.create(&PostParams::default(), &cm("one", "a")).await.unwrap();
    api.create(&PostParams::default(), &cm("two", "a")).await.unwrap();
    let stream = watcher::watch_object(api.clone(), "one");
    let mut stream = Box::pin(stream);
    let first = next_event(&mut stream, "current state").await.unwrap();
    assert_eq!(first.unwrap().metadata.name.as_deref(), Some("one"));
    api.patch("two", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "x"}}))).await.unwrap();
    api.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(
        next_event(&mut stream, "deletion").await.unwrap().is_none(),
        "only `one` is watched, and its deletion arrives"
    );
}

#[tokio::test]
async fn metadata_only_lists_and_watches() {
    use kube::core::PartialObjectMeta;
    let c = sim().await;
    let cl = client(&c).await;
    let api: Api<ConfigMap> = Api::namespaced(cl.clone(), "default");
    api.create(&PostParams::default(), &cm("m", "meta")).await.unwrap();
    // On the wire: metadata only, as a real server answers `as=PartialObjectMetadataList`.
    let req = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header("accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
        .body(vec![])
        .unwrap();
    let raw = cl.request_text(req).await.unwrap();
    assert!(raw.contains("\"PartialObjectMetadataList\"") && !raw.contains("\"data\""), "{raw}");
    let meta: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(cl, "default");
    let list = meta.list(&Default::default()).await.unwrap();
    assert!(list.items.iter().any(|o| o.metadata.name.as_deref() == Some("m")));
    let mut stream = Box::pin(watcher::watcher(meta, watcher::Config::default().labels("tier=meta")));
    loop {
        if let Event::InitDone = next_event(&mut stream, "metadata init").await.unwrap() {
            break;
        }
    }
    api.patch("m", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})))
        .await
        .unwrap();
    match next_event(&mut stream, "metadata apply").await.unwrap() {
        Event::Apply(o) => assert_eq!(o.metadata.annotations.unwrap()["x"], "y"),
        other => panic!("unexpected {other:?}"),
    }
}
