"""Region choice (pure): the routing core, the fleet snapshot it reads, and where each region's work is placed."""
