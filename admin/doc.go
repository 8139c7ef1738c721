// Package admin will hold the operators' JSON API (with its OpenAPI
// document) and the admin UI over one service layer: relying parties,
// providers, policies and keys. It is empty until its issue is taken up;
// until then operators configure the broker declaratively in YAML and
// manage keys with `trustbroker keys`.
package admin
