"""Grid signal sources: trace replay and live HTTP feeds (WattTime, Electricity Maps, EIA, generic) behind one
interface, the store that keeps their last good values, and the poller that feeds it.

Kept import-light on purpose: `router.config` imports `router.sources.config`, so nothing heavy loads here.
"""
