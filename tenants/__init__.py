"""Tenants: API keys, the tenants database (SQLAlchemy Core, versioned migrations) and the usage recorder."""
