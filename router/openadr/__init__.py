"""OpenADR 3 for gridshift: spec schemas, a VEN that turns VTN events into fleet instructions, and a test VTN.

Kept import-light on purpose: `router.config` imports `router.openadr.config`, so nothing heavy loads here.
"""
