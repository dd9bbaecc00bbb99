"""The HTTP suite: wrk against iodine-http, uvicorn, granian and gunicorn."""
