"""The NSQ lookup service (`tidings lookup`): where queue nodes register their topics.

`registry` holds the registrations, `tcp` serves the registration protocol queue
nodes speak (nsqlookupd's "  V1"), `http` the discovery API consumers use, `server`
binds both, `command` is the CLI, and `admin/` the queue admin web UI.
"""
