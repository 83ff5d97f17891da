//! SIGHUP: the config file is read again, and what can change without
//! re-binding sockets or re-opening the store takes effect at once: routes,
//! interface trust and identity options, codec policy, ring timeout, the
//! registrar's expiry bounds, auth switch and algorithms, and the admission
//! limits. Calls and registrations are untouched. A file that is invalid, or
//! that changes what only a restart can change (listen addresses, interfaces,
//! data_dir, `[limits]`, `[timers]` T1/T2/T4, `[media]`, `[admission.tcp]`,
//! the registrar's domain or interface), is refused as a whole: the running
//! config stays and the log says why. Policies are reloaded either way.

use std::path::Path;

use super::{from_config, RuntimeConfig};

/// The new runtime config from the file at `path`, or `None` (logged) when
/// it is invalid or needs a restart.
pub fn reload_config(path: &Path, current: &RuntimeConfig) -> Option<RuntimeConfig> {
    let cfg = match crate::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("config reload refused, running config stays: {line}");
            }
            return None;
        }
    };
    let next = match from_config(&cfg) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("config reload refused, running config stays: {e}");
            return None;
        }
    };
    let restart = restart_needed(current, &next);
    if !restart.is_empty() {
        tracing::error!(
            "config reload refused, running config stays: {} change only with a restart",
            restart.join(", ")
        );
        return None;
    }
    Some(next)
}

/// What differs between `a` and `b` that a running process cannot take over.
pub fn restart_needed(a: &RuntimeConfig, b: &RuntimeConfig) -> Vec<&'static str> {
    let ids = |rc: &RuntimeConfig| {
        rc.engine
            .ifaces
            .iter()
            .map(|i| {
                (
                    i.name.clone(),
                    i.udp,
                    i.tcp,
                    i.advertise.clone(),
                    i.media.address,
                )
            })
            .collect::<Vec<_>>()
    };
    let registrar = |rc: &RuntimeConfig| rc.registrar.as_ref().map(|r| (r.domain.clone(), r.iface));
    let mut out = Vec::new();
    if ids(a) != ids(b) {
        out.push("interfaces (names, order, listen addresses, advertise, media_address)");
    }
    if a.data_dir != b.data_dir {
        out.push("[node] data_dir");
    }
    if a.limits != b.limits {
        out.push("[limits]");
    }
    if a.engine.timers != b.engine.timers {
        out.push("[timers] t1/t2/t4");
    }
    if a.media != b.media {
        out.push("[media]");
    }
    if a.admission.tcp != b.admission.tcp {
        out.push("[admission.tcp]");
    }
    if registrar(a) != registrar(b) {
        out.push("[registrar] presence, domain or interface");
    }
    out
}

/// Whether the admission pipeline must be rebuilt (its limits changed).
pub fn admission_changed(a: &RuntimeConfig, b: &RuntimeConfig) -> bool {
    a.admission != b.admission || a.admission_ifaces != b.admission_ifaces
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[node]
name = "n"
data_dir = "/tmp/sipveil-reload-test"
[[interface]]
name = "access"
udp = "127.0.0.10:5060"
[[interface]]
name = "core"
udp = "127.0.0.20:5060"
trusted = true
[[route]]
from = "access"
to = "sip:127.0.0.2:5090"
egress = "core"
"#;

    fn rc(text: &str) -> RuntimeConfig {
        let cfg = crate::config::Config::from_toml_str(text, "t.toml").unwrap();
        from_config(&cfg).unwrap()
    }

    #[test]
    fn routes_trust_and_limits_reload_listen_addresses_do_not() {
        let a = rc(BASE);
        let routes = BASE.replace("sip:127.0.0.2:5090", "sip:127.0.0.3:5090");
        assert!(restart_needed(&a, &rc(&routes)).is_empty());
        let trust = BASE.replace("trusted = true", "trusted = false");
        assert!(restart_needed(&a, &rc(&trust)).is_empty());
        let rate = format!("{BASE}\n[admission.rate]\ninvite = 3\n");
        assert!(restart_needed(&a, &rc(&rate)).is_empty());
        assert!(admission_changed(&a, &rc(&rate)));
        assert!(!admission_changed(&a, &rc(&routes)));
        let moved = BASE.replace("127.0.0.10:5060", "127.0.0.11:5060");
        assert_eq!(restart_needed(&a, &rc(&moved)).len(), 1);
        let media = format!("{BASE}\n[media]\nport_range = \"30000-30999\"\n");
        assert_eq!(restart_needed(&a, &rc(&media)), vec!["[media]"]);
    }
}
