"""The online door: Ray Serve deployments and the FastAPI ingress (see serve/app.py)."""
