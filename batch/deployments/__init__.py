"""Deployments and clocks as records (records.py), effort and detection histories (effort.py), their CLI."""
