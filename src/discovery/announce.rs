//! `nook run --announce`: the instance's key under a lease, from the app's readiness to
//! its end. etcd being away never stops the app: every failure is logged and retried
//! with a backoff, and the key comes back once etcd answers again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// In the container's state dir: the announce state, for `nook list --format json`.
pub const STATE_FILE: &str = "announce.json";

use super::etcd::{Client, EtcdError};

/// What `--announce` asks for.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoints: Vec<super::etcd::Endpoint>,
    pub service: String,
    pub ports: Vec<u16>,
    pub ttl: u64,
}

impl Options {
    /// Check the flags (before anything is made).
    pub fn parse(
        endpoints: &str,
        service: &str,
        ports: &[u16],
        ttl: u64,
    ) -> Result<Options, String> {
        let endpoints =
            super::etcd::endpoints(endpoints).map_err(|e| format!("--announce: {e}"))?;
        super::check_service(service)?;
        if ttl < 2 {
            return Err(format!(
                "--ttl {ttl}: the lease's TTL must be at least 2 seconds"
            ));
        }
        Ok(Options {
            endpoints,
            service: service.to_string(),
            ports: ports.to_vec(),
            ttl,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The app is not ready yet.
    Waiting,
    /// Ready; the key is in etcd under `lease`.
    Announced,
    /// Ready, but etcd has not taken the key yet (retrying at `next`).
    Retrying,
    /// The app stopped or said STOPPING=1: the lease is revoked.
    Withdrawn,
}

pub struct Announcer {
    client: Client,
    key: String,
    value: String,
    ttl: u64,
    phase: Phase,
    lease: i64,
    next: Instant,
    backoff: Duration,
    /// Where the state is written on every change (the container's state dir).
    state_file: PathBuf,
}

fn log(msg: &str) {
    eprintln!("nook: announce: {msg}");
}

impl Announcer {
    /// The instance of container `id` (its value: host, addresses, ports, id, start time,
    /// the digest of its config).
    pub fn new(
        o: &Options,
        id: &str,
        bundle_digest: &str,
        state_dir: &std::path::Path,
    ) -> Announcer {
        let host = super::hostname();
        let key = format!("{}{}/{host}/{id}", super::PREFIX, o.service);
        let value = serde_json::json!({
            "service": o.service,
            "host": host,
            "addresses": addresses(),
            "ports": o.ports,
            "id": id,
            "started": crate::state::now_rfc3339(),
            "bundle_digest": bundle_digest,
        })
        .to_string();
        let timeout = Duration::from_secs(o.ttl.clamp(2, 5));
        let a = Announcer {
            client: Client::new(o.endpoints.clone(), timeout),
            key,
            value,
            ttl: o.ttl,
            phase: Phase::Waiting,
            lease: 0,
            next: Instant::now(),
            backoff: Duration::from_millis(500),
            state_file: state_dir.join(STATE_FILE),
        };
        a.record();
        a
    }

    /// Write the state for `nook list` (atomically; a failure only loses that view).
    fn record(&self) {
        let phase = match self.phase {
            Phase::Waiting => "waiting",
            Phase::Announced => "announced",
            Phase::Retrying => "retrying",
            Phase::Withdrawn => "withdrawn",
        };
        let v = serde_json::json!({
            "state": phase,
            "key": self.key,
            "ttl": self.ttl,
            "lease": (self.phase == Phase::Announced).then(|| format!("{:x}", self.lease)),
        });
        let tmp = self.state_file.with_extension("json.tmp");
        if std::fs::write(&tmp, v.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.state_file);
        }
    }

    fn set_phase(&mut self, p: Phase) {
        if self.phase != p {
            self.phase = p;
            self.record();
        } else if p == Phase::Announced {
            // A new lease for the same phase.
            self.record();
        }
    }

    /// How long the supervisor may sleep before `tick` is due (None: nothing is due).
    pub fn timeout(&self) -> Option<Duration> {
        match self.phase {
            Phase::Announced | Phase::Retrying => {
                Some(self.next.saturating_duration_since(Instant::now()))
            }
            Phase::Waiting | Phase::Withdrawn => None,
        }
    }

    /// The app is ready: announce it (or start retrying).
    pub fn ready(&mut self) {
        if self.phase == Phase::Waiting {
            self.try_announce();
        }
    }

    /// Renew the lease when due; retry a failed announce when due.
    pub fn tick(&mut self) {
        if Instant::now() < self.next {
            return;
        }
        match self.phase {
            Phase::Announced => match self.client.keepalive(self.lease) {
                Ok(ttl) if ttl > 0 => self.next = Instant::now() + self.renew_every(),
                Ok(_) => {
                    log(&format!(
                        "the lease of {} expired; announcing again",
                        self.key
                    ));
                    self.try_announce();
                }
                Err(e) => {
                    log(&format!(
                        "renewing the lease of {}: {e}; retrying",
                        self.key
                    ));
                    self.set_phase(Phase::Retrying);
                    self.retry_later();
                }
            },
            Phase::Retrying => self.try_announce(),
            Phase::Waiting | Phase::Withdrawn => {}
        }
    }

    /// The app stops (or said STOPPING=1): take the key away now, not at the TTL.
    pub fn withdraw(&mut self) {
        self.revoke();
        self.set_phase(Phase::Withdrawn);
    }

    /// The app is no longer ready (its --ready-cmd fails): take the key away until
    /// `ready` again.
    pub fn unready(&mut self) {
        if self.phase != Phase::Withdrawn {
            self.revoke();
            self.set_phase(Phase::Waiting);
        }
    }

    fn revoke(&mut self) {
        if self.phase == Phase::Announced {
            match self.client.revoke(self.lease) {
                Ok(()) => log(&format!("withdrew {}", self.key)),
                Err(e) => log(&format!(
                    "revoking the lease of {}: {e} (the key goes within {} s)",
                    self.key, self.ttl
                )),
            }
        }
    }

    fn renew_every(&self) -> Duration {
        Duration::from_millis(self.ttl * 1000 / 3)
    }

    fn try_announce(&mut self) {
        match self.announce() {
            Ok(lease) => {
                self.lease = lease;
                self.set_phase(Phase::Announced);
                self.backoff = Duration::from_millis(500);
                self.next = Instant::now() + self.renew_every();
                log(&format!(
                    "announced {} (lease {lease:x}, TTL {} s)",
                    self.key, self.ttl
                ));
            }
            Err(e) => {
                log(&format!("{e}; retrying in {:?}", self.backoff));
                self.set_phase(Phase::Retrying);
                self.retry_later();
            }
        }
    }

    fn retry_later(&mut self) {
        self.next = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(self.ttl.max(2)));
    }

    fn announce(&self) -> Result<i64, EtcdError> {
        let lease = self.client.grant(self.ttl)?;
        if let Err(e) = self.client.put(&self.key, &self.value, lease) {
            let _ = self.client.revoke(lease);
            return Err(e);
        }
        Ok(lease)
    }
}

/// The host's addresses other than loopback.
fn addresses() -> Vec<String> {
    let mut out = vec![];
    if let Ok(ifs) = nix::ifaddrs::getifaddrs() {
        for i in ifs {
            if i.flags
                .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
            {
                continue;
            }
            if let Some(a) = i.address {
                if let Some(v4) = a.as_sockaddr_in() {
                    out.push(v4.ip().to_string());
                } else if let Some(v6) = a.as_sockaddr_in6() {
                    out.push(v6.ip().to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
