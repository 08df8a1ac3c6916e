//! StackRox/ACS policies: the exported JSON, validated as StackRox validates it, evaluated
//! offline for the BUILD lifecycle against [`crate::facts::ImageFacts`].
