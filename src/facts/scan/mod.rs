//! Scanner reports (Trivy JSON, Grype JSON, cosign vulnerability attestations) read into a
//! [`super::ScanReport`].
