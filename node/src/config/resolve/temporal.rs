//! Where Temporal is: embedded (a dev server this node starts) or external (with TLS, API key).

use super::{Env, FileReads};
use crate::codec::Keyring;
use crate::config::raw::RawTemporal;
use crate::config::{Overrides, Secret, TemporalConfig, TemporalTarget, TlsConfig};
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn resolve(
    raw: &RawTemporal,
    env: &Env,
    overrides: &Overrides,
    reads: &FileReads,
    errors: &mut Vec<String>,
) -> TemporalConfig {
    let embedded = overrides
        .embedded
        .or_else(|| {
            env.get("ORRERY_TEMPORAL_EMBEDDED")
                .map(|v| v == "true" || v == "1")
        })
        .or(raw.embedded)
        .unwrap_or(false);
    let address = env
        .pick(
            &overrides.temporal_address,
            "ORRERY_TEMPORAL_ADDRESS",
            &raw.address,
        )
        .unwrap_or_else(|| "127.0.0.1:7233".into());
    let target = if embedded {
        let port = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or_else(|| {
                errors.push(format!("temporal address `{address}` has no port"));
                7233
            });
        TemporalTarget::Embedded {
            port,
            ui_port: raw.ui_port.unwrap_or(port.saturating_add(1000)),
        }
    } else {
        if !address.contains(':') {
            errors.push(format!("temporal address `{address}` is not HOST:PORT"));
        }
        TemporalTarget::External {
            address,
            ui_url: env.get("ORRERY_TEMPORAL_UI_URL").or(raw.ui_url.clone()),
        }
    };
    let tls = raw.tls.as_ref().map(|t| TlsConfig {
        ca_cert: t.ca_cert.as_ref().map(PathBuf::from),
        client_cert: PathBuf::from(&t.client_cert),
        client_key: PathBuf::from(&t.client_key),
        domain: t.domain.clone(),
    });
    let payload_keys = payload_keys(env, reads, errors);
    let codec_origins = match env.get("ORRERY_CODEC_ORIGINS") {
        Some(v) => v.split(',').map(|o| o.trim().to_string()).collect(),
        None => raw.codec_origins.clone().unwrap_or_else(|| {
            // The Temporal UI's own origin: its codec calls come from its pages.
            let ui = match &target {
                TemporalTarget::Embedded { ui_port, .. } => {
                    Some(format!("http://127.0.0.1:{ui_port}"))
                }
                TemporalTarget::External { ui_url, .. } => ui_url.clone(),
            };
            ui.and_then(|u| origin_of(&u)).into_iter().collect()
        }),
    };
    TemporalConfig {
        payload_keys,
        codec_origins,
        target,
        namespace: env
            .get("ORRERY_TEMPORAL_NAMESPACE")
            .or(raw.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        tls,
        api_key: env.get("ORRERY_TEMPORAL_API_KEY").map(Secret::new),
    }
}

/// The keys from `ORRERY_PAYLOAD_KEYS`, else from the keys file; a bad value is reported without
/// the key material.
fn payload_keys(env: &Env, reads: &FileReads, errors: &mut Vec<String>) -> Option<Arc<Keyring>> {
    let (source, text) = match (env.get("ORRERY_PAYLOAD_KEYS"), &reads.payload_keys) {
        (Some(v), _) => ("ORRERY_PAYLOAD_KEYS".to_string(), v),
        (None, Some((f, Ok(text)))) => (format!("payload keys file `{f}`"), text.clone()),
        (None, Some((f, Err(e)))) => {
            errors.push(format!("payload keys file `{f}` cannot be read: {e}"));
            return None;
        }
        (None, None) => return None,
    };
    match Keyring::parse(&text) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            errors.push(format!("{source}: {e}"));
            None
        }
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}
