"""Bulk inclusion jobs: large edits of variant inclusions as a reviewed, resumable, verified
ledger worked by Celery. See services.py for the life of a job."""
