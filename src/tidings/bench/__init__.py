"""The load generator and scenarios behind `tidings bench`.

One noun per module: `machine` (what /proc says about a process and the
host), `wsclient` (a lean Centrifuge-over-WebSocket client protocol),
`worker` (a client process holding thousands of those), `fleet` (the
workers seen from the orchestrator), `target` (the server under test),
`publisher` (the keep-alive HTTP API client), `scenarios` (connections,
fanout, churn, api), `results` (JSON files and PNG plots) and `command`
(the `tidings bench` argument parser).
"""
