//! The BUILD-stage policies StackRox ships by default (`pkg/defaults/policies/files/`), in
//! StackRox's own JSON so they pass through the same loader and validator as exported policies.
//!
//! Criteria, severities, enabled/disabled state and enforcement are StackRox's; the names and
//! IDs are StackRox's too, so results line up with `roxctl image check`. The description,
//! rationale and remediation texts are imagegate's own. Deployment exclusions (OpenShift
//! namespaces and deployments) are left out: they never apply when judging an image.

/// (file name, JSON) of every built-in policy.
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "severity_important.json",
        include_str!("severity_important.json"),
    ),
    ("cvss_7.json", include_str!("cvss_7.json")),
    ("fixable_cves.json", include_str!("fixable_cves.json")),
    ("log4shell.json", include_str!("log4shell.json")),
    ("spring4shell.json", include_str!("spring4shell.json")),
    ("struts_cve.json", include_str!("struts_cve.json")),
    ("rapid-reset.json", include_str!("rapid-reset.json")),
    ("image_port_22.json", include_str!("image_port_22.json")),
    (
        "red_hat_images_signed.json",
        include_str!("red_hat_images_signed.json"),
    ),
    ("latest_tag.json", include_str!("latest_tag.json")),
    ("image_age_days.json", include_str!("image_age_days.json")),
    ("root_user.json", include_str!("root_user.json")),
    (
        "update_instructions.json",
        include_str!("update_instructions.json"),
    ),
    (
        "insecure_command.json",
        include_str!("insecure_command.json"),
    ),
    ("apk.json", include_str!("apk.json")),
    ("apt.json", include_str!("apt.json")),
    ("dnf.json", include_str!("dnf.json")),
    ("curl.json", include_str!("curl.json")),
    ("wget.json", include_str!("wget.json")),
    ("add_instruction.json", include_str!("add_instruction.json")),
    (
        "required_image_label.json",
        include_str!("required_image_label.json"),
    ),
];

/// How the built-in policies are named as an origin.
pub const ORIGIN: &str = "builtin";
