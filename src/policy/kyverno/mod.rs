//! Kyverno ClusterPolicy/Policy: loaded with the CRD defaults Kyverno applies, matched as the
//! admission controller matches a Pod, and evaluated offline against [`crate::facts::ImageFacts`].
//!
//! Use: [`load`] the policy files, ask [`required_keys`] which keys the signature gatherer must
//! verify with, then [`evaluate`] the gathered facts for an image in an [`EvalContext`]. Each
//! rule of each policy gives one [`crate::policy::Finding`].
//!
//! Decisions where Kyverno's behaviour cannot be reproduced offline:
//! - The image is judged as the only container (`spec.containers[0]`) of a Pod in the given
//!   namespace, or of a Deployment/DaemonSet/StatefulSet/ReplicaSet/Job/CronJob when a rule
//!   matches only those (Kyverno auto-generates rules for them). The container is named after
//!   the image; the request is a CREATE.
//! - What cannot be known (labels, workload names, annotations, the requesting user, namespace
//!   labels) is assumed to let the rule apply, and an uncertain exclusion is assumed not to
//!   exclude; every assumption is listed in the finding's messages as `note: …`.
//! - Rules that never mention an image are Skipped ("not about the image"); rules that do but
//!   also read unknown data (ConfigMaps, API calls, other Pod fields) are NotEvaluated.
//! - A Kyverno rule error is a violation, enforced when the failure policy is Fail.

mod action;
mod anchors;
pub mod cfg;
mod cfg_check;
mod conditions;
mod error;
mod eval;
pub mod image;
mod keys;
mod load;
mod matching;
mod pattern;
mod validate;
mod vars;
mod verify;
pub mod wildcard;
mod workload;

pub use error::{FieldPath, KyvernoError, PolicyProblem, Segment};
pub use eval::{EvalContext, evaluate, severity};
pub use image::KyvernoImage;
pub use keys::{KeyRequest, required_keys};
pub use load::{KyvernoSet, Policy, PolicyKind, load, load_str};
pub use verify::KeyMaterial;
