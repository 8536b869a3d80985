//! Clusters: join tokens (single use, stored hashed), registration tokens (reusable until they
//! expire; each agent names its cluster), joining and certificate renewal (every
//! replica can issue), labels, revocation and deletion — each a compare-and-set on the
//! cluster's record, so concurrent changes from several replicas never overwrite each other
//! and a revocation made anywhere is refused everywhere once it reaches each cache.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_store::{Expect, Store, Txn};
use tracing::{info, warn};

use super::records::*;
use super::{ClusterView, ControlPlane, MAX_JOIN_TOKEN_TTL, now};
use crate::auth::{self, IssuedCert, hash_token};
use crate::error::{Error, Result};
use crate::pki::{Issued, PeerCert, Subject};

fn record_certificate(cluster: &mut ClusterRecord, issued: &Issued) {
    auth::prune_expired(&mut cluster.certificates, now());
    cluster.certificates.push(IssuedCert { serial: issued.serial.clone(), expires_at: issued.expires_at });
    cluster.cert_expires = issued.expires_at;
}

/// `name` (of `what`: a cluster, a registration token) is a DNS label.
fn check_name(what: &str, name: &str) -> Result<()> {
    if bosun_core::app::is_dns_label(name) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "{what} name {name:?} must be a DNS label: lowercase letters, digits and '-'"
        )))
    }
}

/// The lifetime of a token (of `what`: a join or registration token) is within bounds.
fn check_ttl(what: &str, ttl: Duration) -> Result<()> {
    if ttl > MAX_JOIN_TOKEN_TTL || ttl.is_zero() {
        return Err(Error::InvalidRequest(format!(
            "{what} ttl {}s: give between 1 s and {} days",
            ttl.as_secs(),
            MAX_JOIN_TOKEN_TTL.as_secs() / 86400
        )));
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in labels {
        bosun_core::cluster::check_admin_label(k, v).map_err(Error::InvalidRequest)?;
    }
    Ok(())
}

impl ControlPlane {
    /// Creates a single-use join token bound to `cluster` (and the cluster record if new).
    pub async fn create_join_token(
        &self,
        cluster: &str,
        ttl: Duration,
        labels: BTreeMap<String, String>,
    ) -> Result<(String, i64)> {
        check_name("cluster", cluster)?;
        check_labels(&labels)?;
        check_ttl("join token", ttl)?;
        let token = super::credentials::new_token("bjt_");
        let expires_at = now() + ttl.as_secs() as i64;
        let token_rec = TokenRecord { cluster: cluster.into(), expires_at, registration: String::new() };
        let key = cluster_key(cluster);
        self.transact(|st| {
            let mut txn = Txn::new().put(token_key(&hash_token(&token)), encode(&token_rec));
            match st.clusters.get(cluster) {
                None => {
                    let rec = ClusterRecord { name: cluster.into(), labels: labels.clone(), ..Default::default() };
                    txn = txn.expect(&key, Expect::Absent).put(&key, encode(&rec));
                }
                Some(c) if !labels.is_empty() => {
                    let mut rec = c.value.record.clone();
                    rec.labels.extend(labels.clone());
                    txn = txn.expect(&key, Expect::Version(c.version)).put(&key, encode(&rec));
                }
                Some(_) => {}
            }
            Ok((Some(txn), ()))
        })
        .await?;
        info!(cluster, "join token created");
        Ok((token, expires_at))
    }

    /// Creates a registration token: many agents may join with it until it expires, each
    /// registering the cluster it names (with these labels) and getting its own certificate.
    pub async fn create_registration_token(
        &self,
        name: &str,
        ttl: Duration,
        labels: BTreeMap<String, String>,
    ) -> Result<(String, i64)> {
        check_name("registration token", name)?;
        check_labels(&labels)?;
        check_ttl("registration token", ttl)?;
        let token = super::credentials::new_token("brt_");
        let sha = hash_token(&token);
        let created_at = now();
        let expires_at = created_at + ttl.as_secs() as i64;
        let reg = RegistrationRecord { name: name.into(), token_sha256: sha.clone(), created_at, expires_at, labels };
        let token_rec = TokenRecord { cluster: String::new(), expires_at, registration: name.into() };
        let rkey = registration_key(name);
        let txn =
            Txn::new().expect(&rkey, Expect::Absent).put(&rkey, encode(&reg)).put(token_key(&sha), encode(&token_rec));
        match self.commit(txn).await {
            Ok(_) => {}
            Err(bosun_store::StoreError::Conflict { .. }) => {
                return Err(Error::Exists(format!(
                    "registration token {name:?} exists; delete it first (`bosun cluster registration-token delete {name}`) or choose another name"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        info!(registration = name, expires_at, "registration token created");
        Ok((token, expires_at))
    }

    /// Registration tokens with the clusters each one registered, by name.
    pub async fn registration_tokens(&self) -> Result<Vec<(RegistrationRecord, Vec<String>)>> {
        let records = self.store.list(REGISTRATIONS).await?;
        let st = self.state.read();
        let mut out = Vec::new();
        for r in records.records {
            let Ok(reg) = serde_json::from_slice::<RegistrationRecord>(&r.value) else {
                warn!(key = %r.key, "unreadable registration token record skipped");
                continue;
            };
            let clusters = st
                .clusters
                .values()
                .filter(|c| c.value.record.registered_by == reg.name)
                .map(|c| c.value.record.name.clone())
                .collect();
            out.push((reg, clusters));
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }

    /// Deletes a registration token: no agent can register with it any more; the clusters it
    /// registered keep their identities.
    pub async fn delete_registration_token(&self, name: &str) -> Result<()> {
        let rkey = registration_key(name);
        let not_found = || {
            Error::NotFound(format!(
                "registration token {name:?} not found; `bosun cluster registration-token list` shows them"
            ))
        };
        let stored = self.store.get(&rkey).await?.ok_or_else(not_found)?;
        let reg: RegistrationRecord = serde_json::from_slice(&stored.value).map_err(|_| not_found())?;
        let txn = Txn::new()
            .expect(&rkey, Expect::Version(stored.version))
            .delete(&rkey)
            .delete(token_key(&reg.token_sha256));
        match self.commit(txn).await {
            Ok(_) | Err(bosun_store::StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        info!(registration = name, "registration token deleted");
        Ok(())
    }

    /// Exchanges a token and CSR for a client certificate. A join token is consumed in the
    /// same transaction that records the certificate: two replicas never both accept it. A
    /// registration token registers the cluster the agent names (`cluster`), and stays.
    pub async fn join(
        &self,
        token: &str,
        cluster: &str,
        csr_pem: &str,
        agent_version: &str,
    ) -> Result<(String, Issued)> {
        let tkey = token_key(&hash_token(token));
        let stored = self.store.get(&tkey).await?.ok_or(Error::BadJoinToken)?;
        let rec: TokenRecord = serde_json::from_slice(&stored.value).map_err(|_| Error::BadJoinToken)?;
        if rec.expires_at < now() {
            return Err(Error::BadJoinToken);
        }
        if !rec.registration.is_empty() {
            return self.register(&rec.registration, cluster, csr_pem, agent_version).await;
        }
        if !cluster.is_empty() && cluster != rec.cluster {
            return Err(Error::InvalidRequest(format!(
                "this join token is for cluster {:?}, not {cluster:?}; give the agent the matching --cluster-name or none",
                rec.cluster
            )));
        }
        let issued = self.pki.sign_csr(csr_pem, &Subject::Cluster(rec.cluster.clone()), self.settings.cert_validity)?;
        let key = cluster_key(&rec.cluster);
        self.transact_or(
            |st| {
                let c = st.clusters.get(&rec.cluster).ok_or(Error::BadJoinToken)?;
                let mut updated = c.value.record.clone();
                updated.joined = true;
                updated.agent_version = agent_version.into();
                record_certificate(&mut updated, &issued);
                let txn = Txn::new()
                    .expect(&tkey, Expect::Version(stored.version))
                    .delete(&tkey)
                    .expect(&key, Expect::Version(c.version))
                    .put(&key, encode(&updated));
                Ok((Some(txn), ()))
            },
            // Used meanwhile, here or on another replica.
            |k| (k == tkey).then_some(Error::BadJoinToken),
        )
        .await?;
        self.metrics.certificate("join");
        info!(cluster = %rec.cluster, serial = %issued.serial, "agent joined");
        Ok((rec.cluster, issued))
    }

    /// Registers (or re-registers) `cluster` with the registration token `registration`. A
    /// cluster registered otherwise, or whose agent holds a valid certificate, is refused:
    /// the token lets its holders add clusters, never take over one that has an agent.
    async fn register(
        &self,
        registration: &str,
        cluster: &str,
        csr_pem: &str,
        agent_version: &str,
    ) -> Result<(String, Issued)> {
        if cluster.is_empty() {
            return Err(Error::InvalidRequest(
                "a registration token registers the cluster the agent names: give the agent --cluster-name".into(),
            ));
        }
        check_name("cluster", cluster)?;
        let rkey = registration_key(registration);
        let stored = self.store.get(&rkey).await?.ok_or(Error::BadJoinToken)?;
        let reg: RegistrationRecord = serde_json::from_slice(&stored.value).map_err(|_| Error::BadJoinToken)?;
        if reg.expires_at < now() {
            return Err(Error::BadJoinToken);
        }
        let issued = self.pki.sign_csr(csr_pem, &Subject::Cluster(cluster.into()), self.settings.cert_validity)?;
        let key = cluster_key(cluster);
        self.transact_or(
            |st| {
                // The token still exists when the cluster is recorded.
                let txn = Txn::new().expect(&rkey, Expect::Version(stored.version));
                let (txn, mut rec) = match st.clusters.get(cluster) {
                    None => (
                        txn.expect(&key, Expect::Absent),
                        ClusterRecord {
                            name: cluster.into(),
                            labels: reg.labels.clone(),
                            registered_by: reg.name.clone(),
                            ..Default::default()
                        },
                    ),
                    Some(c) => {
                        let existing = &c.value.record;
                        if existing.registered_by != reg.name {
                            return Err(Error::PermissionDenied(format!(
                                "cluster {cluster:?} exists and was not registered with registration token {:?}; choose another --cluster-name, or join it with `bosun cluster add {cluster}`",
                                reg.name
                            )));
                        }
                        if existing.revoked_at != 0 {
                            return Err(Error::PermissionDenied(format!(
                                "cluster {cluster:?} was revoked; a registration token cannot bring it back: `bosun cluster add {cluster}` gives a single-use token"
                            )));
                        }
                        let mut valid = existing.certificates.clone();
                        auth::prune_expired(&mut valid, now());
                        if !valid.is_empty() {
                            return Err(Error::PermissionDenied(format!(
                                "cluster {cluster:?} already has an agent with a valid certificate; choose another --cluster-name, or move the name to this agent with `bosun cluster revoke {cluster}` and then `bosun cluster add {cluster}`"
                            )));
                        }
                        (txn.expect(&key, Expect::Version(c.version)), existing.clone())
                    }
                };
                rec.joined = true;
                rec.agent_version = agent_version.into();
                record_certificate(&mut rec, &issued);
                Ok((Some(txn.put(&key, encode(&rec))), ()))
            },
            // Deleted meanwhile.
            |k| (k == rkey).then_some(Error::BadJoinToken),
        )
        .await?;
        self.metrics.certificate("join");
        info!(cluster, registration, serial = %issued.serial, "agent registered its cluster");
        Ok((cluster.to_string(), issued))
    }

    /// Issues a new certificate to an agent that holds a valid one (called over mTLS before
    /// the old one expires). Both stay valid until the old one expires, so connections made
    /// with either keep working during the handover.
    pub async fn renew(&self, cluster: &str, csr_pem: &str) -> Result<Issued> {
        let issued = self.pki.sign_csr(csr_pem, &Subject::Cluster(cluster.into()), self.settings.cert_validity)?;
        self.update_cluster(cluster, |c| {
            record_certificate(c, &issued);
            true
        })
        .await?;
        self.metrics.certificate("renewal");
        info!(cluster, serial = %issued.serial, expires_at = issued.expires_at, "agent certificate renewed");
        Ok(issued)
    }

    /// Read-modify-write of one cluster record at the version read; `f` says whether it
    /// changed anything.
    async fn update_cluster(&self, name: &str, mut f: impl FnMut(&mut ClusterRecord) -> bool) -> Result<ClusterRecord> {
        let key = cluster_key(name);
        self.transact(|st| {
            let c = st.clusters.get(name).ok_or_else(|| Error::ClusterNotFound(name.into()))?;
            let mut rec = c.value.record.clone();
            if !f(&mut rec) {
                return Ok((None, rec));
            }
            Ok((Some(Txn::new().expect(&key, Expect::Version(c.version)).put(&key, encode(&rec))), rec))
        })
        .await
    }

    /// Adds or changes `set` and removes `remove` from the cluster's labels; Applications that
    /// target by selector follow (the cluster gains or loses them at once).
    pub async fn set_cluster_labels(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<ClusterRecord> {
        check_labels(&set)?;
        let rec = self
            .update_cluster(name, |c| {
                let before = c.labels.clone();
                for k in remove {
                    c.labels.remove(k);
                }
                c.labels.extend(set.clone());
                c.labels != before
            })
            .await?;
        info!(cluster = name, labels = ?rec.labels, "cluster labels set");
        Ok(rec)
    }

    /// Refuses every certificate issued to the cluster so far and closes its open streams,
    /// on every replica. Its Applications and status stay; a new join token lets it join again.
    pub async fn revoke_cluster(&self, name: &str) -> Result<()> {
        self.update_cluster(name, |rec| {
            rec.certificates.clear();
            rec.joined = false;
            rec.revoked_at = now();
            true
        })
        .await?;
        warn!(cluster = name, "cluster revoked: its certificates are refused and its streams closed");
        Ok(())
    }

    /// Deletes a cluster with its statuses and presence (its history stays with its
    /// Applications).
    pub async fn delete_cluster(&self, name: &str) -> Result<()> {
        let key = cluster_key(name);
        self.transact(|st| {
            let c = st.clusters.get(name).ok_or_else(|| Error::ClusterNotFound(name.into()))?;
            let mut txn = Txn::new().expect(&key, Expect::Version(c.version)).delete(&key);
            for (app, cluster) in st.statuses.keys().filter(|(_, c)| c == name) {
                txn = txn.delete(status_key(app, cluster));
            }
            if st.presence.contains_key(name) {
                txn = txn.delete(presence_key(name));
            }
            Ok((Some(txn), ()))
        })
        .await?;
        info!(cluster = name, "cluster deleted; its certificate is no longer accepted");
        Ok(())
    }

    pub fn cluster(&self, name: &str) -> Result<ClusterView> {
        let st = self.state.read();
        let c = st.clusters.get(name).ok_or_else(|| Error::ClusterNotFound(name.into()))?;
        Ok(ClusterView {
            record: c.value.record.clone(),
            connected: st.connected(name, now()),
            last_seen: st.last_seen(name),
        })
    }

    pub fn clusters(&self) -> Vec<ClusterView> {
        let st = self.state.read();
        let now = now();
        st.clusters
            .values()
            .map(|c| ClusterView {
                record: c.value.record.clone(),
                connected: st.connected(&c.value.record.name, now),
                last_seen: st.last_seen(&c.value.record.name),
            })
            .collect()
    }

    /// The cluster a verified agent certificate speaks for: a joined cluster that issued
    /// exactly this certificate, which has not expired. Every agent RPC makes this check.
    pub fn authorize_agent(&self, peer: &PeerCert) -> Result<String> {
        let Subject::Cluster(name) = &peer.subject else {
            return Err(Error::PermissionDenied("a user certificate cannot call the agent API".into()));
        };
        if peer.not_after <= now() {
            return Err(Error::Unauthenticated(format!(
                "the certificate of cluster {name:?} has expired; the agent renews before expiry, else join again"
            )));
        }
        match self.state.read().clusters.get(name).map(|c| &c.value.record) {
            Some(c) if c.joined && c.certificates.iter().any(|x| x.serial == peer.serial) => Ok(name.clone()),
            Some(c) if c.joined => Err(Error::PermissionDenied(format!(
                "this certificate of cluster {name:?} is no longer valid (replaced or revoked)"
            ))),
            Some(_) => Err(Error::PermissionDenied(format!(
                "cluster {name:?} is revoked; join it again with a new token from `bosun cluster add {name}`"
            ))),
            None => {
                Err(Error::PermissionDenied(format!("cluster {name:?} is not registered (deleted or never joined)")))
            }
        }
    }

    /// An agent's stream opened (`up`, with the facts it reports) or closed on this replica:
    /// counts it, records where the agent is connected, and stores changed facts (labels to
    /// selectors and per-cluster values).
    pub async fn connected(&self, cluster: &str, up: bool, facts: Option<(BTreeMap<String, String>, String)>) {
        let open = {
            let mut st = self.state.write();
            let n = st.connections.entry(cluster.to_string()).or_insert(0);
            if up {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
            *n > 0
        };
        if let Err(e) = self.write_presence(&[cluster.to_string()], open).await {
            warn!(cluster, error = %e, "could not record the agent's presence");
        }
        let Some((reported, version)) = facts else { return };
        let (kept, refused) = bosun_core::cluster::accept_facts(reported);
        for r in refused {
            // An agent speaking outside its own facts: visible to whoever reads the audit log.
            warn!(target: "bosun::audit", who = %format!("cluster/{cluster}"), action = "ReportFacts", object = %r.name, outcome = "refused", reason = %r.why, "audit: fact refused");
        }
        let updated = self
            .update_cluster(cluster, |c| {
                let changed = c.facts != kept || c.agent_version != version;
                c.facts = kept.clone();
                c.agent_version = version.clone();
                changed
            })
            .await;
        if let Err(e) = updated {
            warn!(cluster, error = %e, "could not store the cluster's facts");
        }
    }

    /// Records that this replica streams (or no longer streams) to these clusters' agents.
    pub(super) async fn write_presence(&self, clusters: &[String], connected: bool) -> Result<()> {
        let presence = Presence { replica: self.settings.replica.clone(), connected, last_seen: now() };
        let txn = {
            let st = self.state.read();
            clusters
                .iter()
                .filter(|c| st.clusters.contains_key(*c))
                // A replica whose stream closed does not overwrite another one's newer presence.
                .filter(|c| connected || st.presence.get(*c).is_none_or(|p| p.value.replica == self.settings.replica))
                .fold(Txn::new(), |t, c| t.put(presence_key(c), encode(&presence)))
        };
        if txn.writes.is_empty() {
            return Ok(());
        }
        self.commit(txn).await?;
        Ok(())
    }
}
