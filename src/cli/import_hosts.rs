//! `pathdns import-hosts`: the hand-written `/etc/hosts` lines of the documents' step 4,
//! turned into a commented pathdns config on stdout.
//!
//! The preset's names become `[[registry]]` blocks (instance, region, registry, auth, OSS
//! and bucket addresses); other `aliyuncs.com` names become `[[name]]` entries; every other
//! line is listed in a trailing comment. The text is validated like `pathdns check` before
//! it is printed: nothing that would not load is ever written.

use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use pathdns::config::raw::text::FromText;
use pathdns::config::{auth_name, check_label, oss_name, registry_name, Config};
use pathdns::host::hosts_file;

use super::exit::CommandResult;

pub fn run(file: &Path, no_probes: bool) -> CommandResult {
    let source = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|err| {
        anyhow::anyhow!(
            "{source}: cannot read hosts file: {}",
            pathdns::reason::io_reason(&err).to_lowercase()
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let hosts = collect(&text, &source)?;
    let config = render(&hosts, &source, no_probes);
    Config::parse(&config, &format!("<config imported from {source}>"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(config.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What a hosts-file name is to the `[[registry]]` preset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `<instance>-registry-vpc.<region>.cr.aliyuncs.com`
    Registry { instance: String, region: String },
    /// `dockerauth-vpc.<region>.aliyuncs.com`
    Auth { region: String },
    /// `oss-<region>-internal.aliyuncs.com`
    Oss { region: String },
    /// `<bucket>.oss-<region>-internal.aliyuncs.com`
    Bucket { bucket: String, region: String },
    /// Any other `aliyuncs.com` name: a `[[name]]`.
    Other,
    /// Not an Alibaba Cloud name: not imported.
    Unrelated,
}

fn classify(name: &str) -> Kind {
    if name != "aliyuncs.com" && !name.ends_with(".aliyuncs.com") {
        return Kind::Unrelated;
    }
    let registry = name
        .strip_suffix(".cr.aliyuncs.com")
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(first, region)| Some((first.strip_suffix("-registry-vpc")?, region)));
    if let Some((instance, region)) = registry {
        if is_label(instance) && is_label(region) {
            return Kind::Registry {
                instance: instance.to_owned(),
                region: region.to_owned(),
            };
        }
    }
    if let Some(region) = name
        .strip_prefix("dockerauth-vpc.")
        .and_then(|rest| rest.strip_suffix(".aliyuncs.com"))
        .filter(|region| is_label(region))
    {
        return Kind::Auth {
            region: region.to_owned(),
        };
    }
    if let Some(rest) = name.strip_suffix("-internal.aliyuncs.com") {
        let (bucket, endpoint) = match rest.split_once('.') {
            Some((bucket, endpoint)) => (Some(bucket), endpoint),
            None => (None, rest),
        };
        if let Some(region) = endpoint.strip_prefix("oss-").filter(|r| is_label(r)) {
            match bucket {
                None => {
                    return Kind::Oss {
                        region: region.to_owned(),
                    }
                }
                Some(bucket) if is_label(bucket) => {
                    return Kind::Bucket {
                        bucket: bucket.to_owned(),
                        region: region.to_owned(),
                    }
                }
                Some(_) => {}
            }
        }
    }
    Kind::Other
}

/// A DNS label as the preset accepts it (the hosts-file reader has lower-cased it).
fn is_label(label: &str) -> bool {
    check_label(label).is_ok()
}

fn is_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_label)
}

/// The addresses of one name (file order, each once) and the lines that gave them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Found {
    addrs: Vec<IpAddr>,
    lines: Vec<usize>,
}

impl Found {
    fn add(&mut self, addr: IpAddr, line: usize) {
        if !self.addrs.contains(&addr) {
            self.addrs.push(addr);
        }
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    fn first_line(&self) -> usize {
        self.lines.first().copied().unwrap_or(0)
    }
}

/// An ordered map small enough for a linear search, keeping first-seen order.
#[derive(Debug)]
struct FoundBy<K>(Vec<(K, Found)>);

impl<K: PartialEq> FoundBy<K> {
    fn entry(&mut self, key: K) -> &mut Found {
        let index = match self.0.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                self.0.push((key, Found::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }

    fn get(&self, key: &K) -> Option<&Found> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, found)| found)
    }
}

impl<K> Default for FoundBy<K> {
    fn default() -> Self {
        FoundBy(Vec::new())
    }
}

/// Everything found in the hosts file.
#[derive(Debug, Default)]
struct Hosts {
    /// Keyed by (instance, region).
    registries: FoundBy<(String, String)>,
    /// Keyed by region.
    auth: FoundBy<String>,
    oss: FoundBy<String>,
    /// Keyed by (bucket, region).
    buckets: FoundBy<(String, String)>,
    others: FoundBy<String>,
    /// Lines without an Alibaba Cloud name: (line, text).
    ignored: Vec<(usize, String)>,
    /// Other names on imported lines: (line, name).
    ignored_aliases: Vec<(usize, String)>,
}

fn collect(text: &str, source: &str) -> anyhow::Result<Hosts> {
    let mut hosts = Hosts::default();
    for entry in hosts_file::parse(text) {
        let kinds: Vec<(String, Kind)> = entry
            .names
            .iter()
            .map(|name| (name.clone(), classify(name)))
            .collect();
        if kinds.iter().all(|(_, kind)| *kind == Kind::Unrelated) {
            hosts.ignored.push((entry.line, entry.text.clone()));
            continue;
        }
        let addr = IpAddr::from_text(&entry.addr_text)
            .map_err(|message| anyhow::anyhow!("{source}:{}: {message}", entry.line))?;
        for (name, kind) in kinds {
            match kind {
                Kind::Registry { instance, region } => hosts
                    .registries
                    .entry((instance, region))
                    .add(addr, entry.line),
                Kind::Auth { region } => hosts.auth.entry(region).add(addr, entry.line),
                Kind::Oss { region } => hosts.oss.entry(region).add(addr, entry.line),
                Kind::Bucket { bucket, region } => {
                    hosts.buckets.entry((bucket, region)).add(addr, entry.line)
                }
                Kind::Other if is_name(&name) => hosts.others.entry(name).add(addr, entry.line),
                Kind::Other => anyhow::bail!(
                    "{source}:{}: {name:?} is not a valid DNS name (labels of letters, digits, \
                     '-' and '_', at most 63 characters each)",
                    entry.line
                ),
                Kind::Unrelated => hosts.ignored_aliases.push((entry.line, name)),
            }
        }
    }
    let found = hosts.registries.0.len()
        + hosts.auth.0.len()
        + hosts.oss.0.len()
        + hosts.buckets.0.len()
        + hosts.others.0.len();
    if found == 0 {
        anyhow::bail!("{source}: no Alibaba Cloud name (*.aliyuncs.com) in it: nothing to import");
    }
    Ok(hosts)
}

/// A `[[name]]` entry to write, with why it is not part of a preset.
struct PlainName {
    name: String,
    found: Found,
    why: Option<String>,
}

fn render(hosts: &Hosts, source: &str, no_probes: bool) -> String {
    let mut config = Rendered {
        hosts,
        file: comment_text(source),
        no_probes,
        out: String::new(),
        plain: Vec::new(),
        used_buckets: Vec::new(),
        used_regions: Vec::new(),
    };
    config.header();
    for ((instance, region), registry) in &hosts.registries.0 {
        config.registry(instance, region, registry);
    }
    config.leftover_region_names();
    config.leftover_buckets();
    config.plain_names();
    config.not_imported();
    config.out
}

/// The config text being written, and what the `[[registry]]` blocks already took.
struct Rendered<'a> {
    hosts: &'a Hosts,
    /// The source file, as it may stand in a comment.
    file: String,
    no_probes: bool,
    out: String,
    /// Names written as `[[name]]` entries at the end, in the order of their lines.
    plain: Vec<PlainName>,
    /// Buckets that went into a preset, and regions whose auth/OSS lines did.
    used_buckets: Vec<(String, String)>,
    used_regions: Vec<String>,
}

/// One region's lines that a `[[registry]]` block is made of.
struct RegistryLines<'a> {
    registry: &'a Found,
    auth: Option<&'a Found>,
    oss: Option<&'a Found>,
    bucket: Option<&'a ((String, String), Found)>,
}

impl Rendered<'_> {
    /// What the file is, how to use it, and the server and upstream sections.
    fn header(&mut self) {
        let hosts = self.hosts;
        let mut imported: Vec<usize> = Vec::new();
        let founds = (hosts.registries.0.iter().map(|(_, f)| f))
            .chain(hosts.auth.0.iter().map(|(_, f)| f))
            .chain(hosts.oss.0.iter().map(|(_, f)| f))
            .chain(hosts.buckets.0.iter().map(|(_, f)| f))
            .chain(hosts.others.0.iter().map(|(_, f)| f));
        for found in founds {
            imported.extend(&found.lines);
        }
        imported.sort_unstable();
        imported.dedup();
        let file = &self.file;
        let _ = write!(
            self.out,
            "# pathdns config imported from {file} by `pathdns import-hosts`.\n\
             #\n\
             # It answers the names written by hand into {file}, and forwards every other name\n\
             # to the resolvers in /etc/resolv.conf. Before using it:\n\
             #   pathdns check --config FILE     validate it and list the names it answers\n\
             #   pathdns doctor --config FILE    walk the documents' checks from this host\n\
             # Once pathdns runs and resolv.conf points at it, remove the imported lines from\n\
             # {file}: glibc reads /etc/hosts before DNS, so they would bypass pathdns's health\n\
             # checks and failover.\n\
             #\n\
             # Imported: {}.\n\
             \n\
             [server]\n\
             # Where pathdns answers: \"nameserver 127.0.0.1\" in /etc/resolv.conf.\n\
             listen = [\"127.0.0.1:53\"]\n\
             # Loopback clients only: never an open resolver.\n\
             allow = [\"127.0.0.0/8\", \"::1/128\"]\n\
             \n\
             [upstream]\n\
             # The nameservers in /etc/resolv.conf at start, pathdns's own address left out. Once\n\
             # resolv.conf points at pathdns, list the previous resolvers here instead, e.g.\n\
             # servers = [\"10.0.0.2\"].\n\
             servers = [\"system\"]\n",
            line_word(&imported),
        );
    }

    /// A `[[registry]]` block for one registry line, or a plain name when its region has no
    /// OSS address (the preset needs one).
    fn registry(&mut self, instance: &str, region: &String, registry: &Found) {
        let hosts = self.hosts;
        let oss = hosts.oss.get(region);
        let lines = RegistryLines {
            registry,
            auth: hosts.auth.get(region),
            oss,
            bucket: preset_bucket(hosts, region, oss),
        };
        let Some(oss_addrs) = oss.or(lines.bucket.map(|(_, found)| found)) else {
            self.plain.push(PlainName {
                name: registry_name(instance, region),
                found: registry.clone(),
                why: Some(format!(
                    "Not a [[registry]] block: {} has no line for {},\n\
                     # and the preset needs the OSS address (blob downloads are redirected\n\
                     # there). Look it up from inside the VPC and move this name into a\n\
                     # [[registry]] block with `oss = [...]`.",
                    self.file,
                    oss_name(region)
                )),
            });
            return;
        };
        let shared = self.used_regions.iter().any(|used| used == region);
        self.used_regions.push(region.to_owned());
        self.registry_head(instance, region, &lines);
        self.auth_lines(region, lines.auth);
        self.oss_lines(region, lines.oss, oss_addrs);
        if let Some(((bucket, bucket_region), _)) = lines.bucket {
            let _ = writeln!(
                self.out,
                "# {bucket}.{}\nbucket = \"{bucket}\"",
                oss_name(bucket_region)
            );
            self.used_buckets
                .push((bucket.clone(), bucket_region.clone()));
        }
        if shared {
            let _ = writeln!(
                self.out,
                "# Same auth and OSS answers as the other instance in {region} above: instances\n\
                 # in one region share those names."
            );
        }
        self.probe_lines();
    }

    /// The block's first lines: where it comes from, instance, region and registry.
    fn registry_head(&mut self, instance: &str, region: &str, lines: &RegistryLines<'_>) {
        let mut from = vec![format!("{} (registry)", line_word(&lines.registry.lines))];
        if let Some(auth) = lines.auth {
            from.push(format!("{} (auth)", line_word(&auth.lines)));
        }
        if let Some(oss) = lines.oss {
            from.push(format!("{} (oss)", line_word(&oss.lines)));
        }
        if let Some((_, found)) = lines.bucket {
            from.push(format!("{} (bucket)", line_word(&found.lines)));
        }
        let _ = write!(
            self.out,
            "\n[[registry]]\n# From {}: {}.\n",
            self.file,
            from.join(", ")
        );
        let _ = writeln!(self.out, "instance = \"{instance}\"\nregion = \"{region}\"");
        let _ = writeln!(
            self.out,
            "# {}\nregistry = {}",
            registry_name(instance, region),
            address_list(&lines.registry.addrs)
        );
    }

    fn auth_lines(&mut self, region: &str, auth: Option<&Found>) {
        match auth {
            Some(auth) => {
                let _ = writeln!(
                    self.out,
                    "# {}: the token realm of the registry's /v2/ answer\nauth = {}",
                    auth_name(region),
                    address_list(&auth.addrs)
                );
            }
            None => {
                let _ = writeln!(
                    self.out,
                    "# No `auth` key: {} has no line for {}.\n\
                     # That is right when the instance takes over the auth domain (its /v2/\n\
                     # answer then names the registry itself as the token realm); otherwise add\n\
                     # that name's address here, auth = [\"...\"]. `pathdns doctor` shows which\n\
                     # realm the registry names.",
                    self.file,
                    auth_name(region)
                );
            }
        }
    }

    fn oss_lines(&mut self, region: &str, oss: Option<&Found>, oss_addrs: &Found) {
        match oss {
            Some(oss) => {
                let _ = writeln!(
                    self.out,
                    "# {}: where blob downloads are redirected\noss = {}",
                    oss_name(region),
                    address_list(&oss.addrs)
                );
            }
            None => {
                let _ = writeln!(
                    self.out,
                    "# No {} line in {}: the preset answers it with the bucket's\n\
                     # address (the buckets of a region share its internal OSS endpoint).\n\
                     oss = {}",
                    oss_name(region),
                    self.file,
                    address_list(&oss_addrs.addrs)
                );
            }
        }
    }

    fn probe_lines(&mut self) {
        if self.no_probes {
            let _ = writeln!(
                self.out,
                "# --no-probes: static answers like {}: no health checks, no failover.\n\
                 probes = []",
                self.file
            );
        } else {
            let _ = writeln!(
                self.out,
                "# Health checks: the preset's default probes (`pathdns check` lists them). If\n\
                 # the registry's certificate comes from a private CA, add ca_file = \"...\"."
            );
        }
    }

    /// Auth and OSS lines of regions without a registry line become plain names.
    fn leftover_region_names(&mut self) {
        let hosts = self.hosts;
        let region_names = [
            (&hosts.auth, auth_name as fn(&str) -> String),
            (&hosts.oss, oss_name),
        ];
        for (table, name_of) in region_names {
            for (region, found) in &table.0 {
                if !self.used_regions.contains(region) {
                    self.plain.push(PlainName {
                        name: name_of(region),
                        found: found.clone(),
                        why: Some(no_registry(region, &self.file)),
                    });
                }
            }
        }
    }

    /// Buckets that no `[[registry]]` block took become plain names.
    fn leftover_buckets(&mut self) {
        for ((bucket, region), found) in &self.hosts.buckets.0 {
            if self
                .used_buckets
                .contains(&(bucket.clone(), region.clone()))
            {
                continue;
            }
            let why = if self.used_regions.contains(region) {
                format!(
                    "Another bucket of {region}, or one with other addresses than the OSS name:\n\
                     # a [[registry]] block takes one `bucket` with the OSS addresses."
                )
            } else {
                no_registry(region, &self.file)
            };
            self.plain.push(PlainName {
                name: format!("{bucket}.{}", oss_name(region)),
                found: found.clone(),
                why: Some(why),
            });
        }
    }

    /// Every plain name, the other names of the file included, in the order of its lines.
    fn plain_names(&mut self) {
        for (name, found) in &self.hosts.others.0 {
            self.plain.push(PlainName {
                name: name.clone(),
                found: found.clone(),
                why: None,
            });
        }
        self.plain.sort_by_key(|entry| entry.found.first_line());
        for entry in &self.plain {
            let _ = write!(
                self.out,
                "\n[[name]]\n# From {} {}.\n",
                self.file,
                line_word(&entry.found.lines)
            );
            if let Some(why) = &entry.why {
                let _ = writeln!(self.out, "# {why}");
            }
            let _ = writeln!(
                self.out,
                "name = \"{}\"\ntargets = {}",
                entry.name,
                address_list(&entry.found.addrs)
            );
        }
    }

    /// The lines that were left out, and why.
    fn not_imported(&mut self) {
        let hosts = self.hosts;
        if hosts.ignored.is_empty() && hosts.ignored_aliases.is_empty() {
            return;
        }
        let _ = write!(
            self.out,
            "\n# Not imported from {} (not Alibaba Cloud names):\n",
            self.file
        );
        let mut notes: Vec<(usize, String)> = hosts
            .ignored
            .iter()
            .map(|(line, text)| (*line, comment_text(text)))
            .chain(hosts.ignored_aliases.iter().map(|(line, name)| {
                (
                    *line,
                    format!("alias {} on an imported line", comment_text(name)),
                )
            }))
            .collect();
        notes.sort_by_key(|(line, _)| *line);
        for (line, text) in notes {
            let _ = writeln!(self.out, "#   line {line}: {text}");
        }
    }
}

/// The preset's `bucket` shares the OSS addresses: the first bucket of the region that has
/// them (or, without an OSS line, the first bucket, whose addresses then serve both).
fn preset_bucket<'h>(
    hosts: &'h Hosts,
    region: &str,
    oss: Option<&Found>,
) -> Option<&'h ((String, String), Found)> {
    let mut region_buckets = hosts.buckets.0.iter().filter(|((_, r), _)| r == region);
    match oss {
        Some(oss) => region_buckets.find(|(_, found)| found.addrs == oss.addrs),
        None => region_buckets.next(),
    }
}

fn no_registry(region: &str, file: &str) -> String {
    format!("No registry line for {region} in {file}, so no [[registry]] block: a plain name.")
}

/// `["10.94.205.198", "10.94.205.199"]`
fn address_list(addrs: &[IpAddr]) -> String {
    let quoted: Vec<String> = addrs.iter().map(|addr| format!("\"{addr}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `3, 4, 5`
fn lines_text(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `line 3` or `lines 3, 8`
fn line_word(lines: &[usize]) -> String {
    match lines {
        [one] => format!("line {one}"),
        _ => format!("lines {}", lines_text(lines)),
    }
}

/// Text safe inside a TOML comment: no control characters but tab.
fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_documents_names() {
        assert_eq!(
            classify("xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com"),
            Kind::Registry {
                instance: "xxxxxx".into(),
                region: "cn-hangzhou".into()
            }
        );
        assert_eq!(
            classify("dockerauth-vpc.cn-hangzhou.aliyuncs.com"),
            Kind::Auth {
                region: "cn-hangzhou".into()
            }
        );
        assert_eq!(
            classify("oss-cn-hangzhou-internal.aliyuncs.com"),
            Kind::Oss {
                region: "cn-hangzhou".into()
            }
        );
        assert_eq!(
            classify("mybucket.oss-cn-hangzhou-internal.aliyuncs.com"),
            Kind::Bucket {
                bucket: "mybucket".into(),
                region: "cn-hangzhou".into()
            }
        );
        assert_eq!(
            classify("xxxxxx-registry.cn-hangzhou.cr.aliyuncs.com"),
            Kind::Other
        );
        assert_eq!(
            classify("-registry-vpc.cn-hangzhou.cr.aliyuncs.com"),
            Kind::Other
        );
        assert_eq!(
            classify("a.b.oss-cn-hangzhou-internal.aliyuncs.com"),
            Kind::Other
        );
        assert_eq!(classify("localhost"), Kind::Unrelated);
        assert_eq!(classify("notaliyuncs.com"), Kind::Unrelated);
    }

    fn convert(text: &str, no_probes: bool) -> anyhow::Result<String> {
        let hosts = collect(text, "hosts")?;
        let config = render(&hosts, "hosts", no_probes);
        // "system" would read this machine's resolv.conf; the rest is what matters here.
        let checked = config.replace("servers = [\"system\"]", "servers = [\"127.0.0.1:5399\"]");
        Config::parse(&checked, "imported").map_err(|err| anyhow::anyhow!("{err}\n{config}"))?;
        Ok(config)
    }

    #[test]
    fn two_regions_shared_names_buckets_and_others() {
        let config = convert(
            "10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n\
             10.94.205.199 yyyyyy-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n\
             100.103.7.181 dockerauth-vpc.cn-hangzhou.aliyuncs.com\n\
             100.118.28.43 oss-cn-hangzhou-internal.aliyuncs.com a.oss-cn-hangzhou-internal.aliyuncs.com\n\
             100.118.28.44 b.oss-cn-hangzhou-internal.aliyuncs.com\n\
             10.95.0.10 zzz-registry-vpc.cn-shanghai.cr.aliyuncs.com\n\
             100.1.1.1 dockerauth-vpc.cn-beijing.aliyuncs.com\n\
             10.96.0.1 www-registry-vpc.cn-shenzhen.cr.aliyuncs.com\n",
            false,
        )
        .expect("converts");
        // Two hangzhou instances share auth, OSS and bucket a.
        assert_eq!(config.matches("\n[[registry]]\n").count(), 2, "{config}");
        assert_eq!(config.matches("bucket = \"a\"").count(), 2, "{config}");
        // b has other addresses, beijing has no registry, shanghai has no OSS line, and
        // neither has shenzhen.
        for name in [
            "name = \"b.oss-cn-hangzhou-internal.aliyuncs.com\"",
            "name = \"dockerauth-vpc.cn-beijing.aliyuncs.com\"",
            "name = \"zzz-registry-vpc.cn-shanghai.cr.aliyuncs.com\"",
            "name = \"www-registry-vpc.cn-shenzhen.cr.aliyuncs.com\"",
        ] {
            assert!(config.contains(name), "{name}:\n{config}");
        }
        assert!(!config.contains("probes = []"), "{config}");
    }

    #[test]
    fn a_bucket_without_an_oss_line_gives_the_oss_address() {
        let config = convert(
            "10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n\
             100.118.28.43 mybucket.oss-cn-hangzhou-internal.aliyuncs.com\n",
            true,
        )
        .expect("converts");
        assert!(config.contains("oss = [\"100.118.28.43\"]"), "{config}");
        assert!(config.contains("bucket = \"mybucket\""), "{config}");
        assert!(config.contains("No `auth` key"), "{config}");
        assert!(config.contains("probes = []"), "{config}");
    }

    #[test]
    fn errors_name_the_line() {
        let err = convert(
            "127.0.0.1 localhost\n100.103.7.181/32 dockerauth-vpc.cn-hangzhou.aliyuncs.com\n",
            false,
        )
        .expect_err("a network is not an address");
        assert!(err.to_string().starts_with("hosts:2: "), "{err}");
        assert!(err.to_string().contains("write \"100.103.7.181\""), "{err}");
        let err = convert("127.0.0.1 localhost\n", false).expect_err("nothing to import");
        assert!(err.to_string().contains("nothing to import"), "{err}");
        let err = convert("10.0.0.1 bad..aliyuncs.com\n", false).expect_err("bad name");
        assert!(err.to_string().starts_with("hosts:1: "), "{err}");
        // A malformed line that is not about Alibaba Cloud is only listed.
        let config = convert(
            "not-an-address somehost\n10.1.1.1 mirrors.cloud.aliyuncs.com\n",
            false,
        )
        .expect("converts");
        assert!(
            config.contains("#   line 1: not-an-address somehost"),
            "{config}"
        );
    }

    #[test]
    fn comments_stay_comments() {
        assert_eq!(comment_text("a\u{7}b\tc"), "a?b\tc");
    }
}
