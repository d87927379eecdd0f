//! The pipeline's tests: config text in, a [`Config`] or one error line out.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::Name;

use super::validate::names::display_name;
use super::validate::table::MAX_CNAME_CHAIN;
use super::{Config, StaleSettings};

/// A config text with a harmless upstream (no resolv.conf read) and `body` after it.
fn config(body: &str) -> String {
    format!("[upstream]\nservers = [\"10.0.0.2\"]\n{body}")
}

/// The one-line error of an invalid config text named `t.toml`.
fn error_of(text: &str) -> String {
    let err = Config::parse(text, "t.toml").expect_err("this config should be rejected");
    let message = err.to_string();
    assert!(!message.contains('\n'), "not one line: {message:?}");
    message
}

#[test]
fn bad_addresses_are_quoted_with_their_element_and_line() {
    let text = config("[[name]]\nname = \"a.example\"\ntargets = [\"10.1.2.3\", \"10.1.2.300\"]\n");
    assert_eq!(
        error_of(&text),
        "t.toml:5:24: name[0].targets[1]: \"10.1.2.300\" is not an IP address \
         (write one such as \"10.94.205.198\" or \"fd00::1\")"
    );
    // The documents write the 100.x addresses as /32 routes.
    let text = config(
        "[[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\n\
         registry = [\"10.94.205.198\"]\nauth = [\"100.103.7.181/32\"]\noss = [\"100.118.28.43\"]\n",
    );
    assert!(error_of(&text).starts_with(
        "t.toml:7:9: registry[0].auth[0]: \"100.103.7.181/32\" is a network, not an address: \
         write \"100.103.7.181\""
    ));
    let text = config("[[name]]\nname = \"a.example\"\ntargets = [{ addr = \"10.1.2.3:80\" }]\n");
    assert!(error_of(&text).contains("name[0].targets[0].addr: \"10.1.2.3:80\" has a port"));
}

#[test]
fn detailed_targets_report_their_own_mistakes() {
    // Not serde's "data did not match any variant of untagged enum".
    let text =
        config("[[name]]\nname = \"a.example\"\ntargets = [{ addr = \"10.1.2.3\", prio = 2 }]\n");
    let message = error_of(&text);
    assert!(
        message.starts_with("t.toml:5:33: name[0].targets[0].prio: unknown field `prio`"),
        "{message}"
    );
    let text = config("[[name]]\nname = \"a.example\"\ntargets = [7]\n");
    assert!(error_of(&text)
        .contains("name[0].targets[0]: invalid type: integer `7`, expected an IP address"));
}

#[test]
fn listen_allow_and_duration_mistakes_say_what_to_write() {
    let message = error_of(&config("[server]\nlisten = [\"127.0.0.1\"]\n"));
    assert!(
        message.ends_with("server.listen[0]: \"127.0.0.1\" has no port: write \"127.0.0.1:53\""),
        "{message}"
    );
    let message = error_of(&config("[server]\nallow = [\"10.0.0.1\"]\n"));
    assert!(message.ends_with("server.allow[0]: \"10.0.0.1\" has no prefix length: write \"10.0.0.1/32\" for this one address"), "{message}");
    let message = error_of(&config("timeout = 2\n"));
    assert!(message.contains("t.toml:3:11: upstream.timeout: invalid type: integer `2`, expected a duration such as \"2s\""), "{message}");
    let message = error_of(&config(
        "[[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\n\
         registry = \"10.94.205.198\"\noss = [\"100.118.28.43\"]\n",
    ));
    assert!(
        message.contains(
            "t.toml:6:12: registry[0].registry: invalid type: string \"10.94.205.198\", \
             expected a list of IP addresses such as [\"10.94.205.198\"]"
        ),
        "{message}"
    );
}

#[test]
fn settings_without_a_list_element_still_name_their_line() {
    let message = error_of(&config("[server]\nallow = []\n"));
    assert!(
        message.starts_with("t.toml:4:9: server.allow: empty"),
        "{message}"
    );
    let message = error_of("[upstream]\nservers = [\"10.0.0.2\"]\ntimeout = \"0s\"\n");
    assert!(
        message.starts_with("t.toml:3:11: upstream.timeout: must be above 0"),
        "{message}"
    );
    let message = error_of(&config("[server]\ntcp_idle_timeout = \"0ms\"\n"));
    assert!(
        message.starts_with("t.toml:4:20: server.tcp_idle_timeout: must be above 0"),
        "{message}"
    );
    let message = error_of(&config("[server]\nmax_tcp_connections = 0\n"));
    assert!(
        message.starts_with("t.toml:4:23: server.max_tcp_connections: must be between 1"),
        "{message}"
    );
    let message = error_of(&config("[server]\nmax_queries_per_connection = 65537\n"));
    assert!(
        message.starts_with(
            "t.toml:4:30: server.max_queries_per_connection: must be between 1 and 65536"
        ),
        "{message}"
    );
    let message = error_of("[upstream]\nservers = [\"10.0.0.2\"]\nmax_in_flight = 0\n");
    assert!(
        message.starts_with("t.toml:3:17: upstream.max_in_flight: must be between 1"),
        "{message}"
    );
    let message = error_of("[server]\nlisten = [\"127.0.0.1:53\"]\nlisten = [\"127.0.0.1:54\"]\n");
    assert!(
        message.starts_with("t.toml:3:1: duplicate key `listen`"),
        "{message}"
    );
}

#[test]
fn upstream_errors_name_the_entry() {
    let text = "[server]\nlisten = [\"0.0.0.0:5353\"]\n[upstream]\nservers = [\"10.0.0.2\", \"127.0.0.1:5353\"]\n";
    assert_eq!(
        error_of(text),
        "t.toml:4:24: upstream.servers[1]: 127.0.0.1:5353 reaches pathdns's own listen \
         address 0.0.0.0:5353: pathdns would forward to itself"
    );
    let text = "[upstream]\nservers = [\"dns.google\"]\n";
    assert!(error_of(text).starts_with("t.toml:2:12: upstream.servers[0]: \"dns.google\" is not"));
}

#[test]
fn private_domains_are_domains() {
    let message = error_of(&config(
        "private_domains = [\"corp.example\", \"*.lab.example\"]\n",
    ));
    assert_eq!(
        message,
        "t.toml:3:36: upstream.private_domains[1]: \"*.lab.example\": write the domain, \
         \"lab.example\": the names under it are exempt too"
    );
    let message = error_of(&config("private_domains = [\".\"]\n"));
    assert!(
        message.starts_with("t.toml:3:20: upstream.private_domains[0]: \".\" would exempt"),
        "{message}"
    );
    let message = error_of(&config("private_domains = [\"bad_label!.example\"]\n"));
    assert!(
        message.starts_with("t.toml:3:20: upstream.private_domains[0]: \"bad_label!.example\""),
        "{message}"
    );
}

#[test]
fn rebinding_exempts_private_domains_builtins_and_owned_names() {
    let text = config(
        "resolv_conf = \"/nonexistent\"\nprivate_domains = [\"Corp.Example.\"]\n\
         [[name]]\nname = \"*.mirror.example\"\ntargets = [\"10.1.2.3\"]\n\
         [[name]]\nname = \"alias.example\"\ncname = \"ep-1.privatelink.example\"\n",
    );
    let config = Config::parse(&text, "t.toml").expect("valid");
    let rebinding = &config.upstream.rebinding;
    assert!(!rebinding.enabled, "off by default");
    assert!(!config.upstream.case_randomization);
    let text = |names: &[Name]| names.iter().map(Name::to_ascii).collect::<Vec<_>>();
    assert_eq!(
        text(&rebinding.private_domains),
        [
            "corp.example.",
            "privatelink.aliyuncs.com.",
            "localhost.",
            "internal.",
            "home.arpa."
        ]
    );
    assert_eq!(
        text(&rebinding.owned),
        [
            "alias.example.",
            "*.mirror.example.",
            "ep-1.privatelink.example."
        ]
    );
    let origins: Vec<(String, bool, &str)> = rebinding
        .exemptions
        .iter()
        .map(|e| (e.name.to_ascii(), e.subdomains, e.origin.as_str()))
        .collect();
    assert_eq!(
        origins[0],
        ("corp.example.".into(), true, "upstream.private_domains[0]")
    );
    assert_eq!(
        origins[1],
        ("privatelink.aliyuncs.com.".into(), true, "built in")
    );
    assert_eq!(
        origins[5],
        ("*.mirror.example.".into(), false, "owned: name[0]")
    );
    assert_eq!(
        origins[7],
        (
            "ep-1.privatelink.example.".into(),
            false,
            "CNAME target of name[1]"
        )
    );
    let on = config_from("rebinding_protection = true\ncase_randomization = true\n");
    assert!(on.upstream.rebinding.enabled);
    assert!(on.upstream.case_randomization);
}

fn config_from(body: &str) -> Config {
    Config::parse(&config(body), "t.toml").expect("valid")
}

#[test]
fn system_upstream_that_is_only_pathdns_itself_is_explained() {
    let resolv = std::env::temp_dir().join(format!("pathdns-validate-{}.conf", std::process::id()));
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("write a temporary resolv.conf");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:53\"]\n[upstream]\nservers = [\"system\"]\nresolv_conf = {:?}\n",
        resolv.display().to_string()
    );
    let message = error_of(&text);
    let _ = std::fs::remove_file(&resolv);
    assert!(
        message.starts_with(&format!(
            "t.toml:4:12: upstream.servers[0]: \"system\": {} lists only pathdns itself (127.0.0.1:53)",
            resolv.display()
        )),
        "{message}"
    );
    let text = "[upstream]\nservers = [\"system\"]\nresolv_conf = \"/nonexistent/resolv.conf\"\n";
    assert_eq!(
        error_of(text),
        "t.toml:2:12: upstream.servers[0]: \"system\": cannot read /nonexistent/resolv.conf: \
         No such file or directory"
    );
}

#[test]
fn cname_loops_are_found_through_wildcards_and_show_the_chain() {
    let text = config(
        "[[name]]\nname = \"a.example\"\ncname = \"b.example\"\n\
         [[name]]\nname = \"b.example\"\ncname = \"A.example.\"\n",
    );
    assert_eq!(
        error_of(&text),
        "t.toml:5:9: name[0].cname: CNAME loop: a.example -> b.example -> a.example"
    );
    let text = config("[[name]]\nname = \"*.w.example\"\ncname = \"x.w.example\"\n");
    assert_eq!(
        error_of(&text),
        "t.toml:5:9: name[0].cname: CNAME loop: *.w.example -> x.w.example (answered by *.w.example)"
    );
    // An owned name between the target and the wildcard stops the wildcard, as in the
    // answer table: no loop.
    let text = config(
        "[[name]]\nname = \"*.w.example\"\ncname = \"x.y.w.example\"\n\
         [[name]]\nname = \"y.w.example\"\ntargets = [\"10.0.0.1\"]\n",
    );
    assert!(Config::parse(&text, "t.toml").is_ok());
}

#[test]
fn cname_chains_longer_than_the_table_follows_are_rejected() {
    let mut body = String::new();
    // Names n0 .. n9 in the table: nine links between them, one more than followed.
    for index in 0..=MAX_CNAME_CHAIN + 1 {
        body.push_str(&format!(
            "[[name]]\nname = \"n{index}.example\"\ncname = \"n{}.example\"\n",
            index + 1
        ));
    }
    let message = error_of(&config(&body));
    assert!(
        message.contains("name[0].cname: CNAME chain longer than 8 links"),
        "{message}"
    );
    // One link shorter is fine.
    let body = body.replacen(
        "[[name]]\nname = \"n0.example\"\ncname = \"n1.example\"\n",
        "",
        1,
    );
    assert!(Config::parse(&config(&body), "t.toml").is_ok());
}

#[test]
fn two_instances_in_one_region_share_the_auth_and_oss_names() {
    let instance = |name: &str, registry: &str, oss: &str| {
        format!(
            "[[registry]]\ninstance = \"{name}\"\nregion = \"cn-hangzhou\"\n\
             registry = [\"{registry}\"]\nauth = [\"100.103.7.181\"]\noss = [\"{oss}\"]\n"
        )
    };
    let same = config(&format!(
        "{}{}",
        instance("a", "10.94.205.198", "100.118.28.43"),
        instance("b", "10.94.205.199", "100.118.28.43")
    ));
    let parsed = Config::parse(&same, "t.toml").expect("identical shared names are merged");
    let names: Vec<String> = parsed.names.iter().map(|n| display_name(&n.name)).collect();
    assert_eq!(
        names,
        [
            "a-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
            "dockerauth-vpc.cn-hangzhou.aliyuncs.com",
            "oss-cn-hangzhou-internal.aliyuncs.com",
            "b-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
        ]
    );
    let different = config(&format!(
        "{}{}",
        instance("a", "10.94.205.198", "100.118.28.43"),
        instance("b", "10.94.205.199", "100.118.28.44")
    ));
    assert!(error_of(&different).starts_with(
        "t.toml:14:7: registry[1].oss: oss-cn-hangzhou-internal.aliyuncs.com is given twice \
         with different answers (first by registry[0].oss)"
    ));
    // A plain [[name]] never silently merges with a preset name.
    let text = config(&format!(
        "{}[[name]]\nname = \"oss-cn-hangzhou-internal.aliyuncs.com\"\ntargets = [\"100.118.28.43\"]\n",
        instance("a", "10.94.205.198", "100.118.28.43")
    ));
    assert!(error_of(&text).contains("name[0].name: oss-cn-hangzhou-internal.aliyuncs.com is given twice (first by registry[0].oss)"));
}

#[test]
fn the_search_list_is_glibcs_last_search_or_domain_line() {
    // glibc keeps only the last `search` or `domain` line; the rebinding filter exempts
    // what the host really searches.
    let resolv = std::env::temp_dir().join(format!("pathdns-search-{}.conf", std::process::id()));
    std::fs::write(
        &resolv,
        "# c\nsearch corp.example lab.example\nnameserver 10.0.0.2\ndomain idc.example\n",
    )
    .expect("write a temporary resolv.conf");
    let config = config_from(&format!(
        "resolv_conf = {:?}\n",
        resolv.display().to_string()
    ));
    let _ = std::fs::remove_file(&resolv);
    let origin = format!("search domain in {}", resolv.display());
    let searched: Vec<String> = config
        .upstream
        .rebinding
        .exemptions
        .iter()
        .filter(|e| e.origin == origin)
        .map(|e| e.name.to_ascii())
        .collect();
    assert_eq!(searched, ["idc.example."]);
}

#[test]
fn resolv_conf_lines() {
    let text = "# c\nsearch x\nnameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\n";
    assert_eq!(
        crate::host::resolv_conf::parse(text).nameservers,
        vec![
            "127.0.0.53".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
}

#[test]
fn serve_stale_defaults_and_its_budget_rules() {
    let upstream = |body: &str| {
        Config::parse(&config(body), "t.toml")
            .expect("valid")
            .upstream
    };
    let defaults = upstream("");
    assert_eq!(
        defaults.stale,
        Some(StaleSettings {
            max_age: Duration::from_secs(86_400),
            answer_after: Duration::from_millis(1800),
        })
    );
    assert_eq!(defaults.budget(), Duration::from_millis(2250));
    assert_eq!(
        upstream("serve_stale = false\nstale_max_age = \"4s\"\n").stale,
        None
    );
    let answer_after = |body| upstream(body).stale.map(|s| s.answer_after);
    assert_eq!(
        answer_after("timeout = \"3s\"\nstale_max_age = \"3d\"\nstale_answer_after = \"2500ms\"\n"),
        Some(Duration::from_millis(2500))
    );
    // A short timeout shortens the default timer with it.
    assert_eq!(
        answer_after("timeout = \"1500ms\"\n"),
        Some(Duration::from_millis(1500))
    );
    assert!(Config::parse(&config("timeout = \"4700ms\"\n"), "t.toml").is_ok());
    for (body, expected) in [
        (
            "timeout = \"4750ms\"\n",
            "t.toml:3:11: upstream.timeout: 4s 750ms plus pathdns's 250ms guard is 5s, \
             not below glibc's default resolver timeout of 5s: a client would give up and \
             retry before pathdns answers SERVFAIL or a stale answer; use less than 4s 750ms",
        ),
        (
            "stale_answer_after = \"2s\"\n",
            "t.toml:3:22: upstream.stale_answer_after: must be above 0 and shorter than \
             upstream.timeout (2s)",
        ),
        (
            "stale_answer_after = \"0s\"\n",
            "t.toml:3:22: upstream.stale_answer_after: must be above 0",
        ),
        (
            "stale_max_age = \"0s\"\n",
            "t.toml:3:17: upstream.stale_max_age: must be above 0; to never serve stale \
             answers, set serve_stale = false",
        ),
        (
            "stale_max_age = \"30d\"\n",
            "t.toml:3:17: upstream.stale_max_age: 30days is more than 7days",
        ),
    ] {
        let message = error_of(&config(body));
        assert!(message.starts_with(expected), "{message}");
    }
}

#[test]
fn validation_reads_the_host_only_through_its_facts() {
    use super::error::Site;
    use super::facts::HostFacts;
    let text = "[upstream]\nservers = [\"system\"]\n\
                [[name]]\nname = \"a.example\"\ntargets = [\"10.1.2.3\"]\ninterface = \"eth9\"\n";
    let site = Site {
        text,
        path: "t.toml",
    };
    let raw = super::parse::deserialize(&site).expect("schema");
    let mut facts = HostFacts::nothing();
    facts.resolv_conf = Ok(crate::host::resolv_conf::parse(
        "search corp.example\nnameserver 192.0.2.53\n",
    ));
    facts.interfaces = Some(Ok(vec!["lo".into(), "eth9".into()]));
    let config = super::from_raw(&raw, &facts, &site).expect("valid on this host's facts");
    assert_eq!(
        config.upstream.servers,
        ["192.0.2.53:53".parse().expect("address")]
    );
    assert!(config
        .upstream
        .rebinding
        .exemptions
        .iter()
        .any(|e| e.name.to_ascii() == "corp.example."
            && e.origin == "search domain in /etc/resolv.conf"));
    facts.resolv_conf = HostFacts::nothing().resolv_conf;
    let message = super::from_raw(&raw, &facts, &site)
        .expect_err("no resolv.conf")
        .to_string();
    assert!(
        message
            .starts_with("t.toml:2:12: upstream.servers[0]: \"system\": cannot read /nonexistent"),
        "{message}"
    );
}

/// One `[[registry]]` (default probes), a probed `[[name]]` and an unprobed one, with
/// `health`, `registry` and `name` keys added.
fn abort_config(health: &str, registry: &str, name: &str) -> Config {
    config_from(&format!(
        "[health]\n{health}\n\
         [[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\nregistry = [\"10.94.205.198\"]\n\
         auth = [\"100.103.7.181\"]\noss = [\"100.118.28.43\"]\n{registry}\n\
         [[name]]\nname = \"a.example\"\ntargets = [\"10.1.2.3\"]\n\
         probe = {{ kind = \"tcp\", port = 8443 }}\n{name}\n\
         [[name]]\nname = \"plain.example\"\ntargets = [\"10.1.2.4\"]\nabort_stalled = true\n"
    ))
}

/// The effective `abort_stalled` of each owned name, by its origin.
fn abort_flags(config: &Config) -> Vec<(String, bool)> {
    let mut flags: Vec<(String, bool)> = config
        .names
        .iter()
        .map(|n| (n.display(), n.health.abort_stalled))
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

fn flag_of(config: &Config, name: &str) -> bool {
    abort_flags(config)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, flag)| flag)
        .expect("the name is owned")
}

#[test]
fn abort_stalled_defaults_by_kind_and_never_without_probes() {
    let config = abort_config("", "", "");
    assert_eq!(config.stall_after, Duration::from_secs(10));
    let registry = super::registry_name("x", "cn-hangzhou");
    assert!(flag_of(&config, &registry), "{:?}", abort_flags(&config));
    assert!(flag_of(&config, &super::auth_name("cn-hangzhou")));
    assert!(!flag_of(&config, "a.example"), "[[name]] is opt-in");
    // Asked for, but nothing marks an unprobed name's targets down.
    assert!(!flag_of(&config, "plain.example"));
}

#[test]
fn abort_stalled_global_and_per_name_overrides() {
    let config = abort_config("abort_stalled = true\nstall_after = \"30s\"", "", "");
    assert_eq!(config.stall_after, Duration::from_secs(30));
    assert!(flag_of(&config, "a.example"), "the global key applies");
    let config = abort_config("abort_stalled = false", "", "");
    assert!(!flag_of(&config, &super::registry_name("x", "cn-hangzhou")));
    let config = abort_config(
        "abort_stalled = false",
        "abort_stalled = true",
        "abort_stalled = true",
    );
    assert!(flag_of(&config, &super::registry_name("x", "cn-hangzhou")));
    assert!(flag_of(&config, "a.example"), "the name's own key wins");
    let config = abort_config("abort_stalled = true", "abort_stalled = false", "");
    assert!(!flag_of(&config, &super::oss_name("cn-hangzhou")));
}

#[test]
fn stall_after_must_be_between_a_second_and_ten_minutes() {
    for (value, column) in [("\"500ms\"", 15), ("\"11m\"", 15)] {
        let text = config(&format!("[health]\nstall_after = {value}\n"));
        assert_eq!(
            error_of(&text),
            format!("t.toml:4:{column}: health.stall_after: must be between 1s and 10m")
        );
    }
    let text = config("[health]\nstall_after = \"soon\"\n");
    assert!(
        error_of(&text).contains("health.stall_after"),
        "{}",
        error_of(&text)
    );
    let text = config(
        "[[name]]\nname = \"a.example\"\ntargets = [\"10.1.2.3\"]\nabort_stalled = \"yes\"\n",
    );
    assert!(
        error_of(&text).starts_with("t.toml:6:17: name[0].abort_stalled: invalid type"),
        "{}",
        error_of(&text)
    );
}

/// A config with `server` keys, validated on `facts` (the host runs containers or not).
fn node_local_config(server: &str, runtimes: bool) -> Result<Config, String> {
    use super::error::Site;
    use super::facts::HostFacts;
    use crate::host::containers::{Evidence, Runtime};
    let text = format!("[server]\n{server}\n[upstream]\nservers = [\"127.0.0.1:5399\"]\n");
    let site = Site {
        text: &text,
        path: "t.toml",
    };
    let raw = super::parse::deserialize(&site).map_err(|e| e.to_string())?;
    let mut facts = HostFacts::nothing();
    facts.container_runtimes = Some(if runtimes {
        vec![Evidence {
            runtime: Runtime::Docker,
            path: "/run/docker.sock",
        }]
    } else {
        Vec::new()
    });
    super::from_raw(&raw, &facts, &site).map_err(|e| e.to_string())
}

#[test]
fn node_local_auto_follows_the_container_runtimes_and_adds_its_port_53() {
    let on = node_local_config("node_local = \"auto\"", true).expect("valid");
    let node_local = on.server.node_local.as_ref().expect("on with a runtime");
    assert_eq!(node_local.addr.to_string(), "169.254.20.53");
    assert_eq!(node_local.because, "auto: dockerd (/run/docker.sock)");
    assert!(on
        .server
        .listen
        .contains(&"169.254.20.53:53".parse().expect("addr")));
    // Docker's bridge clients are answered; the rest of the world is not.
    let allowed = |ip: &str| {
        let ip: IpAddr = ip.parse().expect("ip");
        on.server.allow.iter().any(|net| net.contains(&ip))
    };
    assert!(allowed("172.17.0.2") && allowed("127.0.0.1") && allowed("10.244.1.5"));
    assert!(!allowed("203.0.113.9"));
    let off = node_local_config("node_local = \"auto\"", false).expect("valid");
    assert!(off.server.node_local.is_none());
    assert_eq!(off.server.listen.len(), 1);
    let none = node_local_config("", true).expect("valid");
    assert!(none.server.node_local.is_none(), "absent is off");
}

#[test]
fn node_local_mistakes_name_the_field_and_the_default() {
    let message =
        node_local_config("node_local = \"10.0.0.53\"", true).expect_err("not link-local");
    assert!(
        message.starts_with("t.toml:2:14: server.node_local: 10.0.0.53 is not link-local"),
        "{message}"
    );
    let message = node_local_config("node_local = \"yes\"", true).expect_err("not an address");
    assert!(message.contains("\"auto\" or \"off\""), "{message}");
    assert!(message.contains("169.254.20.53"), "{message}");
    // A LAN listen address with the widened default would open pathdns to the LAN.
    let message = node_local_config(
        "listen = [\"192.0.2.10:53\"]\nnode_local = \"169.254.20.53\"",
        false,
    )
    .expect_err("needs an explicit allow");
    assert!(message.contains("server.allow: not given"), "{message}");
    let written = node_local_config(
        "listen = [\"192.0.2.10:53\"]\nnode_local = \"169.254.20.53\"\nallow = [\"192.0.2.0/24\"]",
        false,
    )
    .expect("an explicit allow is taken as written");
    assert_eq!(written.server.allow.len(), 1);
}

#[test]
fn the_hash_is_sha256sum_of_the_text_cut_to_16_digits() {
    // `printf abc | sha256sum`: ba7816bf8f01cfea414140de5dae2223...
    assert_eq!(super::text_hash("abc"), "ba7816bf8f01cfea");
    let text = config("");
    let loaded = Config::parse(&text, "t.toml").expect("valid");
    assert_eq!(loaded.hash, super::text_hash(&text));
    let commented = format!("{text}# a comment\n");
    let other = Config::parse(&commented, "t.toml").expect("valid");
    assert_ne!(
        other.hash, loaded.hash,
        "the file's bytes, comments included"
    );
}

#[test]
fn discover_errors_name_the_field_and_line() {
    let registry = |discover: &str| {
        config(&format!(
            "[[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\n{discover}\n"
        ))
    };
    assert!(error_of(&registry("discover = { servers = [] }"))
        .starts_with("t.toml:6:24: registry[0].discover.servers: give 1 to 8 resolvers"));
    assert!(
        error_of(&registry("discover = { servers = [\"10.0.5\"] }")).starts_with(
            "t.toml:6:25: registry[0].discover.servers[0]: `10.0.5` is not an IP address"
        )
    );
    assert!(error_of(&registry(
        "discover = { servers = [\"10.0.5.53\"], interval = \"2d\" }"
    ))
    .contains("registry[0].discover.interval: must be between 1s and 1day"));
    assert!(error_of(&registry(
        "discover = { servers = [\"10.0.5.53\"], interval = \"5s\", timeout = \"6s\" }"
    ))
    .contains("registry[0].discover.timeout: must be shorter than `interval`"));
    assert!(error_of(&registry(
        "discover = { servers = [\"10.0.5.53\"], every = \"5s\" }"
    ))
    .contains("unknown field `every`"));
    // Without discover, the addresses are still required.
    assert!(error_of(&registry("oss = [\"100.118.28.43\"]"))
        .contains("registry[0].registry: needs at least one address"));
    let cname = config(
        "[[name]]\nname = \"a.example\"\ncname = \"b.example\"\n\
         discover = { servers = [\"10.0.5.53\"] }\n",
    );
    assert!(error_of(&cname).contains("name[0].discover: a CNAME name has no addresses to learn"));
}

#[test]
fn with_discover_the_lists_may_be_empty_and_auth_left_out_stays_out() {
    let text = config(
        "[[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\n\
         discover = { servers = [\"10.0.5.53\", \"10.0.6.53:5353\"] }\n",
    );
    let parsed = Config::parse(&text, "t.toml").expect("valid");
    let names: Vec<String> = parsed.names.iter().map(|n| n.display()).collect();
    assert_eq!(
        names,
        [
            "x-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
            "oss-cn-hangzhou-internal.aliyuncs.com"
        ]
    );
    let discovery = parsed.names[0].discover.as_ref().expect("discover");
    assert_eq!(discovery.interval, Duration::from_secs(300));
    assert_eq!(discovery.timeout, Duration::from_secs(2));
    assert_eq!(
        discovery.servers,
        [
            "10.0.5.53:53".parse().unwrap(),
            "10.0.6.53:5353".parse().unwrap()
        ]
    );
    assert!(parsed.names[0].addresses().is_empty());
    let with_auth = text.replace("discover =", "auth = []\ndiscover =");
    let parsed = Config::parse(&with_auth, "t.toml").expect("valid");
    assert!(parsed
        .names
        .iter()
        .any(|n| n.display() == "dockerauth-vpc.cn-hangzhou.aliyuncs.com"));
}
