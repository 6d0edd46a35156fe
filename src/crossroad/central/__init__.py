"""The central server: registry, trust policy, global configuration generation, distribution."""
