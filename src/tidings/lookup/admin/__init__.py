"""The queue admin web UI (`tidings queue-admin`): nodes, topics, channels and actions.

`cluster` reads and acts on the nodes through the NSQ HTTP APIs, `app` serves the
page and its JSON API, `command` is the CLI; the page itself is under `static/`.
"""
