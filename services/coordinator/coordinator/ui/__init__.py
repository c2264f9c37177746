"""The operators' dashboard: server-rendered pages under `/ui/` of the coordinator's API.

Modules: `app` (the application, its middleware and login), `auth` (sessions, origin and
CSRF checks), `sagas` (the list and one saga), `actions` (the forms that act), `pages`
(types, stats, locks, dead letters, participants), `timeline` and `graph` (pure layouts for
the SVG drawings), `present` (redaction and formatting). Templates and static files are
package data; the vendored scripts and their licences are listed in `static/NOTICE.md`.
"""

from coordinator.ui.app import create_ui, mount

__all__ = ["create_ui", "mount"]
