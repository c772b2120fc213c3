"""The PostgreSQL database backend: Django's, failing fast while the server is down (base.py)."""
