"""API routers, one per concern; each is also its own Lambda function."""
