"""What every route handler reads: the runtime, the live hub and auth of one app.

The composition root (collector.web.app) puts one `WebContext` on `app.state.web`; the
handlers (module-level functions of collector.web.api and collector.web.dashboard) take
it with `web(request)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from collector.web.presentation import session_detail

if TYPE_CHECKING:
    from collector.core.forms import FormRegistry
    from collector.core.session.model import Session
    from collector.ports import SessionStore
    from collector.runtime import Runtime
    from collector.web.auth import Auth
    from collector.web.live import Hub

__all__ = ["WebContext", "web"]


@dataclass(frozen=True)
class WebContext:
    runtime: Runtime
    hub: Hub
    auth: Auth
    openapi: dict[str, Any] = field(repr=False)  # GET /openapi.json, built once

    @property
    def store(self) -> SessionStore:
        return self.runtime.store

    @property
    def forms(self) -> FormRegistry:
        return self.runtime.forms

    async def session_view(self, session: Session, *, commands: bool = True) -> dict[str, Any]:
        """GET /api/sessions/{id} and the dashboard's call page: one call, masked, with its
        submission and deliveries (and its Telnyx commands unless `commands` is false)."""
        store = self.store
        submission = None
        deliveries: list[Any] = []
        if session.submission_id:
            submission = await store.submission(session.submission_id)
            deliveries = await store.deliveries_for(session.submission_id)
        return session_detail(
            session,
            self.forms.get(session.form or ""),
            submission=submission,
            deliveries=deliveries,
            commands=await store.commands_for(session.id) if commands else (),
        )


def web(conn: HTTPConnection) -> WebContext:
    """The context of the app serving this request."""
    context: WebContext = conn.app.state.web
    return context
