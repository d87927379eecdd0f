//! HTTPS: `GET /v2/` the way a registry client does it, connecting to the target address
//! with SNI and Host set to the owned name, healthy on the expected status codes; the
//! registry's `WWW-Authenticate: Bearer realm="..."` names the token service to reach.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ProbeOutcome, ProbeTarget};
use crate::reason::error_chain;

pub struct HttpsProbe {
    client: reqwest::Client,
    url: String,
    expect: Vec<u16>,
    label: String,
}

impl HttpsProbe {
    pub fn new(
        target: &ProbeTarget,
        port: u16,
        path: &str,
        expect: &[u16],
        timeout: Duration,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<HttpsProbe, String> {
        let host = target.host();
        let client = reqwest::Client::builder()
            // Pin the owned name to this target: DNS is what we are deciding, not asking.
            .resolve(&host, SocketAddr::new(target.addr, port))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            // A fresh connection each time: the probe is about the path, not a pool.
            .pool_max_idle_per_host(0)
            .timeout(timeout)
            .tls_backend_preconfigured((*tls).clone())
            .user_agent(concat!("pathdns/", env!("CARGO_PKG_VERSION"), " (probe)"))
            .build()
            .map_err(|err| format!("cannot build the HTTPS probe: {err}"))?;
        let port_part = if port == 443 {
            String::new()
        } else {
            format!(":{port}")
        };
        Ok(HttpsProbe {
            client,
            url: format!("https://{host}{port_part}{path}"),
            expect: expect.to_vec(),
            label: format!("GET {host}{port_part}{path} at {}", target.addr),
        })
    }

    pub async fn run(&self) -> ProbeOutcome {
        let started = Instant::now();
        let response = match self.client.get(&self.url).send().await {
            Ok(response) => response,
            Err(err) => {
                return ProbeOutcome::fail(format!("{}: {}", self.label, error_chain(&err)))
            }
        };
        let status = response.status().as_u16();
        let realm = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .and_then(realm_host);
        if !self.expect.contains(&status) {
            return ProbeOutcome::fail(format!(
                "{}: status {status}, expected {:?}",
                self.label, self.expect
            ));
        }
        ProbeOutcome {
            realm,
            ..ProbeOutcome::pass(started, Some(format!("status {status}")))
        }
    }
}

/// The host of the realm in `Bearer realm="https://host/auth",service="..."`.
pub fn realm_host(header: &str) -> Option<String> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let realm = params.split(',').find_map(|param| {
        let (key, value) = param.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("realm")
            .then(|| value.trim().trim_matches('"').to_owned())
    })?;
    let without_scheme = realm
        .split_once("://")
        .map_or(realm.as_str(), |(_, rest)| rest);
    let host = without_scheme.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::realm_host;

    #[test]
    fn reads_the_realm_host() {
        let header = r#"Bearer realm="https://dockerauth-vpc.cn-hangzhou.aliyuncs.com/auth",service="registry.aliyuncs.com:cn-hangzhou:26842""#;
        assert_eq!(
            realm_host(header).as_deref(),
            Some("dockerauth-vpc.cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(
            realm_host(r#"Bearer service="x",realm="https://Auth.Example:8443/token""#).as_deref(),
            Some("auth.example")
        );
        assert_eq!(realm_host(r#"Basic realm="x""#), None);
        assert_eq!(realm_host("Bearer"), None);
    }
}
