//! The `[[registry]]` preset: one ACR Enterprise Edition instance reached over a private
//! path, expanded into the names the documents tell operators to write into /etc/hosts.
//!
//! Owns: the naming rules of section 1 of the design (registry, dockerauth, OSS, custom
//! bucket, OSS wildcard). Must not: validate addresses or detect duplicates; the validator
//! does that for preset and plain names alike.

/// `<instance>-registry-vpc.<region>.cr.aliyuncs.com`
pub fn registry_name(instance: &str, region: &str) -> String {
    format!("{instance}-registry-vpc.{region}.cr.aliyuncs.com")
}

/// `dockerauth-vpc.<region>.aliyuncs.com`: the token realm the registry's `/v2/` names.
pub fn auth_name(region: &str) -> String {
    format!("dockerauth-vpc.{region}.aliyuncs.com")
}

/// `oss-<region>-internal.aliyuncs.com`: where blob downloads are redirected.
pub fn oss_name(region: &str) -> String {
    format!("oss-{region}-internal.aliyuncs.com")
}

/// `<bucket>.oss-<region>-internal.aliyuncs.com`: a custom bucket.
pub fn bucket_name(bucket: &str, region: &str) -> String {
    format!("{bucket}.{}", oss_name(region))
}

/// `*.oss-<region>-internal.aliyuncs.com`: every bucket in the region.
pub fn oss_wildcard_name(region: &str) -> String {
    format!("*.{}", oss_name(region))
}

/// Priority of a preset's `backup` targets: after the primary group.
pub const BACKUP_PRIORITY: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_documents() {
        assert_eq!(
            registry_name("xxxxxx", "cn-hangzhou"),
            "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com"
        );
        assert_eq!(
            auth_name("cn-hangzhou"),
            "dockerauth-vpc.cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            oss_name("cn-hangzhou"),
            "oss-cn-hangzhou-internal.aliyuncs.com"
        );
        assert_eq!(
            bucket_name("mybucket", "cn-hangzhou"),
            "mybucket.oss-cn-hangzhou-internal.aliyuncs.com"
        );
        assert_eq!(
            oss_wildcard_name("cn-hangzhou"),
            "*.oss-cn-hangzhou-internal.aliyuncs.com"
        );
    }
}
