"""Cross-provider conformance: histories produced on one protocol, continued on another."""
