"""`tidings serve --workers N`: a supervisor and N worker processes sharing the ports.

`supervisor` starts and restarts the workers (and a private redis-server,
`private_redis`, when no Redis is configured); `worker` is the process each
one runs; `lifeline` keeps the children from outliving the supervisor.
See docs/workers.md.
"""
