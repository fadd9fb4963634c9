"""The Rensei platform's public Sessions API (`/api/public/*`) and daemon credential routes."""
