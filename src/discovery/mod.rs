//! Service discovery (issue 17): a foreground `nook run --announce` puts the ready app
//! into etcd under a lease it keeps alive, and withdraws it when the app stops; `nook
//! watch` follows a service's instances. Containers started without --announce never
//! reach this module.

pub mod announce;
pub mod etcd;
pub mod render;
pub mod watch;

/// Where instances live: `/nook/services/NAME/<host>/<container-id>`.
pub const PREFIX: &str = "/nook/services/";

/// A service name: a non-empty key segment.
pub fn check_service(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!(
            "--service {name:?}: a service name is one non-empty key segment (no '/')"
        ));
    }
    Ok(())
}

/// This host's name (the key's host segment and the instance's `host`).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
