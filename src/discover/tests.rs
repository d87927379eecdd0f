use super::*;
use crate::config::Config;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
[upstream]
servers = ["127.0.0.1:9"]
[[registry]]
instance = "xxxxxx"
region = "cn-hangzhou"
discover = { servers = ["10.0.5.53"], interval = "5m" }
registry = []
oss = ["100.118.28.43"]
oss_wildcard = true
probes = []
"#;

fn learned(addrs: &[&str]) -> Learned {
    Learned {
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        server: "10.0.5.53:53".into(),
        confirmed_unix_ms: 1,
    }
}

#[test]
fn the_preset_asks_its_names_and_the_wildcard_as_the_oss_name() {
    let config = Config::parse(CONFIG, "test").unwrap();
    assert_eq!(
        asked_names(&config),
        vec![
            "oss-cn-hangzhou-internal.aliyuncs.com".to_owned(),
            "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com".to_owned(),
        ]
    );
}

#[test]
fn a_name_with_nothing_written_or_learned_is_forwarded_until_discovered() {
    let config = Config::parse(CONFIG, "test").unwrap();
    let effective = overlay(&config, &LearnedMap::new());
    let names: Vec<String> = effective.names.iter().map(|n| n.display()).collect();
    assert!(
        !names.iter().any(|n| n.contains("registry-vpc")),
        "{names:?}"
    );
    let mut map = LearnedMap::new();
    map.insert(
        "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com".into(),
        learned(&["10.94.205.198"]),
    );
    let effective = overlay(&config, &map);
    let registry = effective
        .names
        .iter()
        .find(|n| n.display().contains("registry-vpc"))
        .unwrap();
    assert_eq!(
        registry.addresses(),
        vec!["10.94.205.198".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn learned_addresses_join_the_written_ones_once_and_reach_the_wildcard() {
    let config = Config::parse(CONFIG, "test").unwrap();
    let mut map = LearnedMap::new();
    map.insert(
        "oss-cn-hangzhou-internal.aliyuncs.com".into(),
        learned(&["100.118.28.43", "100.118.28.44"]),
    );
    let effective = overlay(&config, &map);
    for name in effective
        .names
        .iter()
        .filter(|n| n.display().contains("oss-"))
    {
        let addrs: Vec<String> = name.addresses().iter().map(ToString::to_string).collect();
        assert_eq!(
            addrs,
            vec!["100.118.28.43", "100.118.28.44"],
            "{}",
            name.display()
        );
    }
}
