"""OpenADR 3 (an integration: HTTP and aiohttp): spec schemas, a VEN that turns VTN events into fleet instructions
and reports power back, and a local VTN for tests and demos."""
