"""Load tests: locust users and shapes that check gridshift's routing under changing grid conditions."""
