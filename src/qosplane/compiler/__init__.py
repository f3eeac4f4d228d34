"""Pure compilers: (instance intent, HostFacts) -> HostPlan. No I/O, no clock, no environment."""
