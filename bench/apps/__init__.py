"""The applications every HTTP server under test runs, unchanged.

``GET`` anything: ``Hello, world!`` as text/plain. ``POST`` anything: the app
reads the whole body and answers its length in bytes, so an upload is measured
end to end rather than dropped unread.
"""
