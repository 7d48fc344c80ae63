"""The shared kernel (pure): the fleet config, a model per concept; the signal table; clock; time helpers; grid
events; errors. It imports nothing else of gridshift, and every other package may import it."""
