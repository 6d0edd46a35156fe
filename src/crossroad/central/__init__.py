"""The central server: member registry, trust policy, global configuration generation and distribution."""
