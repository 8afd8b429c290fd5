//! Where Temporal is: embedded (a dev server this node starts) or external (with TLS, API key).

use super::Env;
use crate::config::raw::RawTemporal;
use crate::config::{Overrides, Secret, TemporalConfig, TemporalTarget, TlsConfig};
use std::path::PathBuf;

pub(super) fn resolve(
    raw: &RawTemporal,
    env: &Env,
    overrides: &Overrides,
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
    TemporalConfig {
        target,
        namespace: env
            .get("ORRERY_TEMPORAL_NAMESPACE")
            .or(raw.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        tls,
        api_key: env.get("ORRERY_TEMPORAL_API_KEY").map(Secret::new),
    }
}
