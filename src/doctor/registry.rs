//! Doctor's steps 4 and 5: the registry's `GET /v2/` (401 with a `Bearer realm` that this
//! config answers), and a TLS handshake with SNI = the name for dockerauth and OSS.
//!
//! Owns: the `https /v2/` and `tls` checks. Must not: send credentials or anything beyond
//! the unauthenticated `GET /v2/`.

use super::target::{run_probe, short_detail, took, TargetPlan};
use super::{remedy, Check, Verdict};
use crate::config::ProbeKind;
use crate::probe::ProbeContext;

const LABEL: &str = "https /v2/";

pub(super) async fn tls_check(plan: &TargetPlan, context: &ProbeContext) -> Check {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let kind = ProbeKind::Tls {
        port: 443,
        ca_file: plan.ca_file.clone(),
    };
    let outcome = run_probe(&kind, &plan.probe_target, plan.timeout, context).await;
    let roots = match &plan.ca_file {
        Some(path) => format!("CA {}", path.display()),
        None => "system roots".into(),
    };
    if outcome.ok {
        return Check::new(
            Verdict::Ok,
            display,
            target,
            "tls",
            format!(
                "handshake as {display} verified ({roots}){}",
                took(&outcome)
            ),
        );
    }
    let why = outcome.detail.unwrap_or_default();
    Check::fail(
        display,
        target,
        "tls",
        format!("handshake as {display} ({roots}): {}", short_detail(&why)),
        remedy::tls(&why, display, plan.addr),
    )
}

pub(super) async fn registry_check(plan: &TargetPlan, context: &ProbeContext) -> Check {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let kind = ProbeKind::Https {
        port: 443,
        path: "/v2/".into(),
        expect: vec![401],
        ca_file: plan.ca_file.clone(),
    };
    let outcome = run_probe(&kind, &plan.probe_target, plan.timeout, context).await;
    let fail = |detail, remedy| Check::fail(display, target, LABEL, detail, remedy);
    if !outcome.ok {
        let why = outcome.detail.unwrap_or_default();
        return fail(
            format!("GET /v2/: {}", short_detail(&why)),
            remedy::registry(&why, display, plan.addr),
        );
    }
    let Some(realm) = outcome.realm.clone() else {
        return fail(
            "401 without a Bearer realm in WWW-Authenticate".into(),
            format!(
                "{} does not answer like an ACR registry: check the address",
                plan.addr
            ),
        );
    };
    let ok = |detail| Check::new(Verdict::Ok, display, target, LABEL, detail);
    if realm == display {
        return ok(format!(
            "401, realm {realm}: the instance has taken over the auth domain, no dockerauth name \
             is needed{}",
            took(&outcome)
        ));
    }
    if owns(&plan.owned, &realm) {
        return ok(format!(
            "401, realm {realm} (an owned name){}",
            took(&outcome)
        ));
    }
    fail(
        format!("401, realm {realm}, which this config does not answer: docker login would fail"),
        remedy::missing_realm(&realm),
    )
}

/// Whether `host` is answered by an owned name, exactly or through a wildcard.
pub(super) fn owns(owned: &[String], host: &str) -> bool {
    owned.iter().any(|name| match name.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => name == host,
    })
}
