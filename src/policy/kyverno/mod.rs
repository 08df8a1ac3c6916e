//! Kyverno ClusterPolicy/Policy: loaded with the CRD defaults Kyverno applies, matched as the
//! admission controller matches a Pod, and evaluated offline against [`crate::facts::ImageFacts`].
