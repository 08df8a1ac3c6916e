//! Every policy criterion StackRox knows (`pkg/booleanpolicy/fieldnames/list.go`), with the
//! rules its validator applies (`field_metadata.go`, `value_regex.go`): whether the criterion can
//! be negated, whether it takes more than one value, what a value must look like, and whether
//! it can be evaluated at BUILD time (it reads only the image).

use std::sync::LazyLock;

use regex::Regex;

/// The syntax a criterion's values must have. Each is StackRox's pattern, applied as StackRox
/// applies it: `((?m)^PATTERN$)`, searched anywhere in the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    String,
    KeyValue,
    Boolean,
    Integer,
    ComparatorDecimal,
    Severity,
    DockerfileLine,
    EnvironmentVariable,
    AddCapabilities,
    DropCapabilities,
    RbacPermission,
    PortExposure,
    KubernetesResource,
    MountPropagation,
    SeccompProfile,
    AuditApiVerb,
    KubernetesName,
    IpAddress,
    SignatureIntegrationId,
    FileOperation,
    AbsolutePath,
}

/// The BUILD-time criteria imagegate evaluates: those that compile against StackRox's image
/// object (`augmentedobjs.ImageMeta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Criterion {
    ImageRegistry,
    ImageRemote,
    ImageTag,
    ImageSignatureVerifiedBy,
    ImageAge,
    ImageScanAge,
    ImageUser,
    DockerfileLine,
    ImageComponent,
    ImageOs,
    UnscannedImage,
    Cve,
    Cvss,
    NvdCvss,
    Severity,
    Fixable,
    FixedBy,
    DaysSincePublished,
    DaysSinceFixAvailable,
    DaysSinceFirstDiscoveredInImage,
    DaysSinceFirstDiscoveredInSystem,
    RequiredImageLabel,
    DisallowedImageLabel,
}

/// What StackRox's validator knows about one criterion.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub negatable: bool,
    /// More than one value (and with it the AND/OR operator) is allowed.
    pub multiple: bool,
    pub syntax: Syntax,
    /// `Some` for the criteria that can be evaluated at BUILD time.
    pub criterion: Option<Criterion>,
}

const fn field(
    name: &'static str,
    negatable: bool,
    multiple: bool,
    syntax: Syntax,
    criterion: Option<Criterion>,
) -> Field {
    Field {
        name,
        negatable,
        multiple,
        syntax,
        criterion,
    }
}

use Criterion as C;
use Syntax as S;

/// The catalogue, in StackRox's (alphabetical) order.
pub(crate) const FIELDS: &[Field] = &[
    field("Add Capabilities", false, true, S::AddCapabilities, None),
    field("Allow Privilege Escalation", false, false, S::Boolean, None),
    field("AppArmor Profile", true, true, S::String, None),
    field(
        "Automount Service Account Token",
        false,
        false,
        S::Boolean,
        None,
    ),
    field("CVE", true, true, S::String, Some(C::Cve)),
    field("CVSS", false, true, S::ComparatorDecimal, Some(C::Cvss)),
    field(
        "Container CPU Limit",
        false,
        true,
        S::ComparatorDecimal,
        None,
    ),
    field(
        "Container CPU Request",
        false,
        true,
        S::ComparatorDecimal,
        None,
    ),
    field(
        "Container Memory Limit",
        false,
        true,
        S::ComparatorDecimal,
        None,
    ),
    field(
        "Container Memory Request",
        false,
        true,
        S::ComparatorDecimal,
        None,
    ),
    field("Container Name", true, true, S::String, None),
    field(
        "Days Since CVE Was Published",
        false,
        false,
        S::Integer,
        Some(C::DaysSincePublished),
    ),
    field(
        "Days Since CVE Fix Was Available",
        false,
        false,
        S::Integer,
        Some(C::DaysSinceFixAvailable),
    ),
    field(
        "Days Since CVE Was First Discovered In Image",
        false,
        false,
        S::Integer,
        Some(C::DaysSinceFirstDiscoveredInImage),
    ),
    field(
        "Days Since CVE Was First Discovered In System",
        false,
        false,
        S::Integer,
        Some(C::DaysSinceFirstDiscoveredInSystem),
    ),
    field("Disallowed Annotation", false, true, S::String, None),
    field(
        "Disallowed Image Label",
        false,
        true,
        S::KeyValue,
        Some(C::DisallowedImageLabel),
    ),
    field(
        "Dockerfile Line",
        false,
        true,
        S::DockerfileLine,
        Some(C::DockerfileLine),
    ),
    field("Drop Capabilities", false, true, S::DropCapabilities, None),
    field(
        "Environment Variable",
        false,
        true,
        S::EnvironmentVariable,
        None,
    ),
    field("Exposed Node Port", true, true, S::ComparatorDecimal, None),
    field("Exposed Port", true, true, S::ComparatorDecimal, None),
    field("Exposed Port Protocol", true, true, S::String, None),
    field("File Operation", true, true, S::FileOperation, None),
    field("File Path", false, true, S::AbsolutePath, None),
    field("Fixable", false, false, S::Boolean, Some(C::Fixable)),
    field("Fixed By", true, true, S::String, Some(C::FixedBy)),
    field("Has Ingress Network Policy", true, false, S::Boolean, None),
    field("Has Egress Network Policy", true, false, S::Boolean, None),
    field("Host IPC", false, false, S::Boolean, None),
    field("Host Network", false, false, S::Boolean, None),
    field("Host PID", false, false, S::Boolean, None),
    field("Image Age", false, false, S::Integer, Some(C::ImageAge)),
    field(
        "Image Component",
        false,
        true,
        S::KeyValue,
        Some(C::ImageComponent),
    ),
    field("Image OS", true, true, S::String, Some(C::ImageOs)),
    field(
        "Image Registry",
        true,
        true,
        S::String,
        Some(C::ImageRegistry),
    ),
    field("Image Remote", true, true, S::String, Some(C::ImageRemote)),
    field(
        "Image Scan Age",
        false,
        false,
        S::Integer,
        Some(C::ImageScanAge),
    ),
    field(
        "Image Signature Verified By",
        false,
        true,
        S::SignatureIntegrationId,
        Some(C::ImageSignatureVerifiedBy),
    ),
    field("Image Tag", true, true, S::String, Some(C::ImageTag)),
    field("Image User", true, true, S::String, Some(C::ImageUser)),
    field("Is Impersonated User", false, false, S::Boolean, None),
    field(
        "Kubernetes Resource",
        false,
        true,
        S::KubernetesResource,
        None,
    ),
    field("Kubernetes API Verb", false, true, S::AuditApiVerb, None),
    field("Kubernetes Resource Name", true, true, S::String, None),
    field("Kubernetes User Name", true, true, S::KubernetesName, None),
    field(
        "Kubernetes User Groups",
        true,
        true,
        S::KubernetesName,
        None,
    ),
    field("Liveness Probe Defined", false, false, S::Boolean, None),
    field(
        "Minimum RBAC Permissions",
        true,
        false,
        S::RbacPermission,
        None,
    ),
    field("Mount Propagation", true, true, S::MountPropagation, None),
    field("Namespace", true, true, S::String, None),
    field(
        "NVD CVSS",
        false,
        true,
        S::ComparatorDecimal,
        Some(C::NvdCvss),
    ),
    field("Port Exposure Method", true, true, S::PortExposure, None),
    field("Privileged Container", false, false, S::Boolean, None),
    field("Process Ancestor", true, true, S::String, None),
    field("Process Arguments", true, true, S::String, None),
    field("Process Name", true, true, S::String, None),
    field("Process UID", true, true, S::String, None),
    field("Read-Only Root Filesystem", false, false, S::Boolean, None),
    field("Replicas", true, true, S::ComparatorDecimal, None),
    field("Readiness Probe Defined", true, false, S::Boolean, None),
    field("Required Annotation", false, true, S::KeyValue, None),
    field(
        "Required Image Label",
        false,
        true,
        S::KeyValue,
        Some(C::RequiredImageLabel),
    ),
    field("Required Label", false, true, S::KeyValue, None),
    field("Runtime Class", true, true, S::String, None),
    field("Seccomp Profile Type", true, false, S::SeccompProfile, None),
    field("Service Account", true, true, S::String, None),
    field("Severity", false, true, S::Severity, Some(C::Severity)),
    field("Source IP Address", true, true, S::IpAddress, None),
    field(
        "Unexpected Network Flow Detected",
        false,
        false,
        S::Boolean,
        None,
    ),
    field(
        "Unexpected Process Executed",
        false,
        false,
        S::Boolean,
        None,
    ),
    field(
        "Unscanned Image",
        false,
        false,
        S::Boolean,
        Some(C::UnscannedImage),
    ),
    field("User Agent", true, true, S::String, None),
    field("Volume Destination", true, true, S::String, None),
    field("Volume Name", true, true, S::String, None),
    field("Volume Source", true, true, S::String, None),
    field("Volume Type", true, true, S::String, None),
    field("Writable Host Mount", false, false, S::Boolean, None),
    field("Writable Mounted Volume", false, false, S::Boolean, None),
];

/// The field named `name` (exactly, as StackRox looks it up).
pub(crate) fn find(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The names of the BUILD-time criteria, for messages.
pub(crate) fn build_field_names() -> Vec<&'static str> {
    FIELDS
        .iter()
        .filter(|f| f.criterion.is_some())
        .map(|f| f.name)
        .collect()
}

const CAPABILITIES: &str = "AUDIT_CONTROL|AUDIT_READ|AUDIT_WRITE|BLOCK_SUSPEND|CHOWN|DAC_OVERRIDE|DAC_READ_SEARCH|FOWNER|FSETID|IPC_LOCK|IPC_OWNER|KILL|LEASE|LINUX_IMMUTABLE|MAC_ADMIN|MAC_OVERRIDE|MKNOD|NET_ADMIN|NET_BIND_SERVICE|NET_BROADCAST|NET_RAW|SETGID|SETFCAP|SETPCAP|SETUID|SYS_ADMIN|SYS_BOOT|SYS_CHROOT|SYS_MODULE|SYS_NICE|SYS_PACCT|SYS_PTRACE|SYS_RAWIO|SYS_RESOURCE|SYS_TIME|SYS_TTY_CONFIG|SYSLOG|WAKE_ALARM";

/// StackRox's value pattern for `syntax` (before anchoring); `audit_log` selects the resource
/// list of audit-log policies.
fn pattern(syntax: Syntax, audit_log: bool) -> String {
    match syntax {
        Syntax::String => ".*[^[:space:]]+.*".into(),
        Syntax::KeyValue => "[^=]+=.*".into(),
        Syntax::Boolean => "(?i:(true|false))".into(),
        Syntax::Integer => "([[:digit:]]+)".into(),
        Syntax::ComparatorDecimal => r"(<|>|<=|>=)?[[:space:]]*[[:digit:]]*\.?[[:digit:]]+".into(),
        Syntax::Severity => {
            "(<|>|<=|>=)?[[:space:]]*(?i:UNKNOWN|LOW|MODERATE|IMPORTANT|CRITICAL)".into()
        }
        Syntax::DockerfileLine => "(?i:(ADD|ARG|CMD|COPY|ENTRYPOINT|ENV|EXPOSE|FROM|LABEL|MAINTAINER|ONBUILD|RUN|STOPSIGNAL|USER|VOLUME|WORKDIR|^)=).*".into(),
        Syntax::EnvironmentVariable => {
            "(?i:(UNSET|RAW|SECRET_KEY|CONFIG_MAP_KEY|FIELD|RESOURCE_FIELD|UNKNOWN|^)=[^=]*=.*)"
                .into()
        }
        Syntax::AddCapabilities => format!("(?i:({CAPABILITIES}))"),
        Syntax::DropCapabilities => format!("(?i:(ALL|{CAPABILITIES}))"),
        Syntax::RbacPermission => {
            "(?i:DEFAULT|ELEVATED_IN_NAMESPACE|ELEVATED_CLUSTER_WIDE|CLUSTER_ADMIN)".into()
        }
        Syntax::PortExposure => "(?i:UNSET|EXTERNAL|NODE|HOST|INTERNAL|ROUTE)".into(),
        Syntax::KubernetesResource if audit_log => "(?i:SECRETS|CONFIGMAPS|CLUSTER_ROLES|CLUSTER_ROLE_BINDINGS|NETWORK_POLICIES|SECURITY_CONTEXT_CONSTRAINTS|EGRESS_FIREWALLS)".into(),
        Syntax::KubernetesResource => "(?i:PODS_EXEC|PODS_PORTFORWARD|PODS_ATTACH)".into(),
        Syntax::MountPropagation => "(?i:NONE|HOSTTOCONTAINER|BIDIRECTIONAL)".into(),
        Syntax::SeccompProfile => "(?i:UNCONFINED|RUNTIME_DEFAULT|LOCALHOST)".into(),
        Syntax::AuditApiVerb => "(?i:CREATE|DELETE|GET|PATCH|UPDATE)".into(),
        Syntax::KubernetesName => "(?i:[a-z0-9])(?i:[-:a-z0-9]*[a-z0-9])?".into(),
        Syntax::IpAddress => {
            let v4 = r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})";
            let v6 = "((?:[0-9A-Fa-f]{1,4}))((?::[0-9A-Fa-f]{1,4}))*::((?:[0-9A-Fa-f]{1,4}))((?::[0-9A-Fa-f]{1,4}))*|((?:[0-9A-Fa-f]{1,4}))((?::[0-9A-Fa-f]{1,4})){7}";
            format!("({v4})|({v6})")
        }
        Syntax::SignatureIntegrationId => r"io\.stackrox\.signatureintegration\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}".into(),
        Syntax::FileOperation => "(?i:OPEN|CREATE|RENAME|UNLINK|OWNERSHIP_CHANGE|PERMISSION_CHANGE|XATTR_CHANGE)".into(),
        // Checked in code (see `value_is_valid`); any text passes the pattern.
        Syntax::AbsolutePath => ".*".into(),
    }
}

/// The anchored pattern as StackRox builds it (`createRegex`).
fn anchored(syntax: Syntax, audit_log: bool) -> Option<Regex> {
    Regex::new(&format!("((?m)^{}$)", pattern(syntax, audit_log))).ok()
}

const ALL_SYNTAXES: [Syntax; 21] = [
    Syntax::String,
    Syntax::KeyValue,
    Syntax::Boolean,
    Syntax::Integer,
    Syntax::ComparatorDecimal,
    Syntax::Severity,
    Syntax::DockerfileLine,
    Syntax::EnvironmentVariable,
    Syntax::AddCapabilities,
    Syntax::DropCapabilities,
    Syntax::RbacPermission,
    Syntax::PortExposure,
    Syntax::KubernetesResource,
    Syntax::MountPropagation,
    Syntax::SeccompProfile,
    Syntax::AuditApiVerb,
    Syntax::KubernetesName,
    Syntax::IpAddress,
    Syntax::SignatureIntegrationId,
    Syntax::FileOperation,
    Syntax::AbsolutePath,
];

/// The compiled value patterns, built once: (syntax, audit-log variant, regex).
static VALUE_PATTERNS: LazyLock<Vec<(Syntax, bool, Option<Regex>)>> = LazyLock::new(|| {
    let mut patterns = Vec::new();
    for syntax in ALL_SYNTAXES {
        patterns.push((syntax, false, anchored(syntax, false)));
        if syntax == Syntax::KubernetesResource {
            patterns.push((syntax, true, anchored(syntax, true)));
        }
    }
    patterns
});

/// The pattern a value of `syntax` must match, as text for messages.
pub(crate) fn pattern_text(syntax: Syntax, audit_log: bool) -> String {
    pattern(syntax, audit_log)
}

/// Whether `value` is acceptable for `syntax`, as StackRox's validator decides it.
pub(crate) fn value_is_valid(syntax: Syntax, audit_log: bool, value: &str) -> bool {
    if syntax == Syntax::AbsolutePath {
        return value.starts_with('/') && !value.split('/').any(|part| part == "..");
    }
    let audit_variant = audit_log && syntax == Syntax::KubernetesResource;
    VALUE_PATTERNS
        .iter()
        .find(|(s, audit, _)| *s == syntax && *audit == audit_variant)
        .and_then(|(_, _, regex)| regex.as_ref())
        .is_some_and(|regex| regex.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_three_criteria_are_evaluable_at_build_time() {
        let names = build_field_names();
        assert_eq!(names.len(), 23, "{names:?}");
        // Each criterion appears once.
        let mut criteria: Vec<_> = FIELDS.iter().filter_map(|f| f.criterion).collect();
        let before = criteria.len();
        criteria.dedup();
        assert_eq!(criteria.len(), before);
    }

    #[test]
    fn every_value_pattern_compiles() {
        for (syntax, audit, regex) in VALUE_PATTERNS.iter() {
            assert!(
                regex.is_some(),
                "{syntax:?} (audit {audit}) does not compile"
            );
        }
    }

    #[test]
    fn field_names_are_unique_and_exact() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[i + 1..].iter().all(|g| g.name != f.name),
                "{}",
                f.name
            );
        }
        assert!(find("Image Tag").is_some());
        assert!(find("image tag").is_none());
    }

    #[test]
    fn value_syntax_follows_stackrox() {
        let ok = |s, v| value_is_valid(s, false, v);
        assert!(ok(Syntax::String, "latest"));
        assert!(!ok(Syntax::String, "   "));
        assert!(!ok(Syntax::String, ""));
        assert!(ok(Syntax::KeyValue, "curl="));
        assert!(!ok(Syntax::KeyValue, "=1.0"));
        assert!(!ok(Syntax::KeyValue, "curl"));
        assert!(ok(Syntax::Integer, "90"));
        assert!(!ok(Syntax::Integer, "-1"));
        assert!(!ok(Syntax::Integer, "90d"));
        assert!(ok(Syntax::ComparatorDecimal, ">= 7.000000"));
        assert!(ok(Syntax::ComparatorDecimal, "7"));
        assert!(ok(Syntax::ComparatorDecimal, "<.5"));
        assert!(!ok(Syntax::ComparatorDecimal, "=> 7"));
        assert!(ok(Syntax::Severity, ">= IMPORTANT"));
        assert!(ok(Syntax::Severity, ">=important"));
        assert!(ok(Syntax::Severity, "CRITICAL"));
        assert!(!ok(Syntax::Severity, ">= HIGH"));
        assert!(ok(Syntax::Boolean, "True"));
        assert!(!ok(Syntax::Boolean, "yes"));
        assert!(ok(Syntax::DockerfileLine, "RUN=apt-get update"));
        assert!(ok(Syntax::DockerfileLine, "=anything"));
        assert!(ok(Syntax::DockerfileLine, "expose=22"));
        assert!(!ok(Syntax::DockerfileLine, "HEALTHCHECK=x"));
        assert!(!ok(Syntax::DockerfileLine, "apt-get"));
        assert!(ok(
            Syntax::SignatureIntegrationId,
            "io.stackrox.signatureintegration.12a37a37-760e-4388-9e79-d62726c075b2"
        ));
        assert!(!ok(Syntax::SignatureIntegrationId, "my-integration"));
        assert!(ok(Syntax::AbsolutePath, "/etc/passwd"));
        assert!(!ok(Syntax::AbsolutePath, "/etc/../passwd"));
        assert!(!ok(Syntax::AbsolutePath, "etc"));
        assert!(value_is_valid(Syntax::KubernetesResource, true, "SECRETS"));
        assert!(!value_is_valid(
            Syntax::KubernetesResource,
            false,
            "SECRETS"
        ));
    }
}
