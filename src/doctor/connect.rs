//! Doctor's step 3, connect: TCP to the target's ports (443, or a custom name's probe
//! ports).
//!
//! Owns: the `connect` check. Must not: connect anywhere but the target.

use super::target::{run_probe, short_detail, took, TargetPlan};
use super::{remedy, Check, Verdict};
use crate::config::ProbeKind;
use crate::probe::ProbeContext;

pub(super) async fn connect_check(
    plan: &TargetPlan,
    port: u16,
    route_ok: bool,
    context: &ProbeContext,
) -> Check {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let kind = ProbeKind::Tcp { port };
    let outcome = run_probe(&kind, &plan.probe_target, plan.timeout, context).await;
    if outcome.ok {
        return Check::new(
            Verdict::Ok,
            display,
            target,
            "connect",
            format!("tcp {port} open{}", took(&outcome)),
        );
    }
    let why = outcome.detail.unwrap_or_default();
    let interface = plan.name.health.interface.as_deref();
    let route_remedy = (!route_ok).then(|| remedy::add_route(plan.addr, interface, &plan.routes));
    Check::fail(
        display,
        target,
        "connect",
        format!("tcp {port}: {}", short_detail(&why)),
        remedy::connect(&why, plan.addr, port, display, route_remedy),
    )
}
