"""Live grid signal sources: trace replay and HTTP feeds (WattTime, Electricity Maps, EIA, generic) behind one
interface, the thread-safe store that keeps their last good values, and the poller that feeds it."""
