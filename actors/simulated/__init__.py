"""Stand-in venues: local servers that generate a market and speak a real exchange's protocol,
so the demo, the benchmarks and the tests run a real feed with no internet. Whatever they stream
is simulated; the demo labels it so."""
