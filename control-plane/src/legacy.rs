//! What earlier versions stored, read once and converted: the per-kind tables of store
//! schema 1 (`bosun.redb`, one table per kind) and version-1 backups, into the records of
//! [`crate::model::records`]. Nothing else reads the old layout.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::datadir::{DataDir, LEGACY_STORE_FILE, Marker, SCHEMA_VERSION, STORE_FILE, write_file};
use crate::model::records::*;

/// The tables of schema 1, by name.
const TABLES: [&str; 9] =
    ["apps", "clusters", "join_tokens", "status", "history", "meta", "credentials", "repositories", "bundles"];

/// One schema-1 record as today's records (none for what is no longer kept).
pub fn convert(table: &str, key: &str, value: &[u8]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let one = |k: String| Ok(vec![(k, value.to_vec())]);
    match table {
        "apps" => {
            let mut a: AppRecord = serde_json::from_slice(value).with_context(|| format!("application {key:?}"))?;
            if a.uid.is_empty() {
                // Recorded before Applications had a uid.
                a.uid = uuid::Uuid::new_v4().to_string();
            }
            Ok(vec![(app_key(key), encode(&a))])
        }
        // Old cluster records carry fields no longer stored (generations, last seen): dropped.
        "clusters" => {
            let c: ClusterRecord = serde_json::from_slice(value).with_context(|| format!("cluster {key:?}"))?;
            Ok(vec![(cluster_key(key), encode(&c))])
        }
        "join_tokens" => one(token_key(key)),
        "status" => one(format!("{STATUS}{key}")),
        "history" => {
            let entries: Vec<HistoryEntry> =
                serde_json::from_slice(value).with_context(|| format!("history of {key:?}"))?;
            let next = entries.iter().map(|e| e.id).max().unwrap_or(0) + 1;
            let mut out = vec![(history_counter_key(key), encode(&HistoryCounter { next }))];
            out.extend(entries.iter().map(|e| (history_key(key, &e.cluster, e.id), encode(e))));
            Ok(out)
        }
        "credentials" => one(credential_key(key)),
        "repositories" => one(repo_key(key)),
        "bundles" => one(bundle_key(key)),
        _ => Ok(Vec::new()),
    }
}

/// Converts a data directory of schema 1 in place, once: the old file's records go into a
/// new store in one transaction, the marker says schema 2, and the old file is kept beside
/// it as `bosun.redb.schema1` (delete it once satisfied). A directory of schema 2 is left
/// alone. Returns the number of records converted.
pub async fn migrate_data_dir(dir: &Path) -> anyhow::Result<Option<usize>> {
    let dd = DataDir { root: dir.to_path_buf(), required: Vec::new() };
    let Some(marker) = dd.marker()? else { return Ok(None) };
    let old = dir.join(LEGACY_STORE_FILE);
    if marker.schema_version >= SCHEMA_VERSION || !old.exists() {
        return Ok(None);
    }
    let new = dir.join(STORE_FILE);
    anyhow::ensure!(
        !new.exists(),
        "{} is of schema {} and holds both {} and {}: a conversion was interrupted. Move {} away and start again",
        dir.display(),
        marker.schema_version,
        LEGACY_STORE_FILE,
        STORE_FILE,
        new.display()
    );
    let records = read_file(&old)?;
    let count = records.len();
    let store = bosun_store::Embedded::open(&new)?;
    if !records.is_empty() {
        let txn = records.into_iter().fold(bosun_store::Txn::new(), |t, (k, v)| t.put(k, v));
        bosun_store::Store::commit(&store, txn).await?;
    }
    drop(store);
    write_file(
        &dd.marker_path(),
        &serde_json::to_vec_pretty(&Marker { schema_version: SCHEMA_VERSION, ..marker })?,
        0o644,
    )?;
    std::fs::rename(&old, dir.join(format!("{LEGACY_STORE_FILE}.schema1")))?;
    tracing::info!(records = count, dir = %dir.display(), "converted the store to schema 2");
    Ok(Some(count))
}

/// Every record of a schema-1 file, converted.
fn read_file(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let db = bosun_store::open_database(path)?;
    let tx = db.begin_read()?;
    let mut out = BTreeMap::new();
    for name in TABLES {
        let def: TableDefinition<&str, &[u8]> = TableDefinition::new(name);
        let table = match tx.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for row in table.iter()? {
            let (k, v) = row?;
            out.extend(convert(name, k.value(), v.value())?);
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_1_directory_is_converted_once_and_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let db = redb::Database::create(dir.join(LEGACY_STORE_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(TableDefinition::<&str, &[u8]>::new("apps")).unwrap();
                let rec = AppRecord {
                    name: "web".into(),
                    uid: String::new(),
                    generation: 0,
                    spec: Default::default(),
                    sync_request: 2,
                    sync_prune: false,
                    status: Default::default(),
                    rollback: None,
                    parent: String::new(),
                    warnings: Vec::new(),
                    rollout: Default::default(),
                };
                let mut app = serde_json::to_value(&rec).unwrap();
                app.as_object_mut().unwrap().remove("uid");
                t.insert("web", serde_json::to_vec(&app).unwrap().as_slice()).unwrap();
                let mut h = tx.open_table(TableDefinition::<&str, &[u8]>::new("history")).unwrap();
                let entries = vec![
                    HistoryEntry { id: 7, cluster: "c1".into(), ..Default::default() },
                    HistoryEntry { id: 6, cluster: "c2".into(), ..Default::default() },
                ];
                h.insert("web", serde_json::to_vec(&entries).unwrap().as_slice()).unwrap();
                let mut r = tx.open_table(TableDefinition::<&str, &[u8]>::new("repositories")).unwrap();
                r.insert("https://git.example/a b", b"{}".as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        let dd = DataDir { root: dir.into(), required: Vec::new() };
        write_file(
            &dd.marker_path(),
            &serde_json::to_vec(&Marker { installation_id: "i".into(), schema_version: 1, created_at: 0 }).unwrap(),
            0o644,
        )
        .unwrap();
        assert_eq!(migrate_data_dir(dir).await.unwrap(), Some(5));
        assert_eq!(dd.marker().unwrap().unwrap().schema_version, SCHEMA_VERSION);
        assert!(dir.join("bosun.redb.schema1").exists() && !dir.join(LEGACY_STORE_FILE).exists());
        let store = bosun_store::Embedded::open(&dir.join(STORE_FILE)).unwrap();
        use bosun_store::Store;
        let keys: Vec<String> = store.keys("").await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "apps/web",
                "history/web",
                "history/web/c1/000000000007",
                "history/web/c2/000000000006",
                &repo_key("https://git.example/a b")
            ]
        );
        let app: AppRecord = serde_json::from_slice(&store.get("apps/web").await.unwrap().unwrap().value).unwrap();
        assert!(!app.uid.is_empty() && app.sync_request == 2);
        let counter: HistoryCounter =
            serde_json::from_slice(&store.get("history/web").await.unwrap().unwrap().value).unwrap();
        assert_eq!(counter.next, 8);
        drop(store);
        // Done once.
        assert_eq!(migrate_data_dir(dir).await.unwrap(), None);
    }
}
