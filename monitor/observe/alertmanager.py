"""An Alertmanager configuration from the catalog: a receiver per owning team, pages over tickets."""

from __future__ import annotations

from ..catalog.model import Catalog
from .windows import PROFILES, Profile

EXAMPLE_WEBHOOK = "http://alerts.example.invalid"


def alertmanager_config(
    catalog: Catalog, webhook: str = EXAMPLE_WEBHOOK, profile: Profile = PROFILES["production"]
) -> dict:
    """Route by ``owner`` to one receiver per team (webhooks under ``webhook``; replace them with your
    pager, chat or e-mail receivers); anything else goes to the Customer Room. A page inhibits the
    tickets of the same touchpoint."""
    owners = sorted({t.owner for t in catalog.touchpoints})
    base = webhook.rstrip("/")
    return {
        "route": {
            "receiver": "customer-room",
            "group_by": ["alertname", "touchpoint", "severity"],
            "group_wait": profile.window("30s") if profile.scale == 1 else "1s",
            "group_interval": profile.window("5m"),
            "repeat_interval": profile.window("4h"),
            "routes": [{"matchers": [f'owner="{owner}"'], "receiver": f"team-{owner}"} for owner in owners],
        },
        "receivers": [{"name": "customer-room", "webhook_configs": [{"url": f"{base}/customer-room"}]}]
        + [{"name": f"team-{owner}", "webhook_configs": [{"url": f"{base}/{owner}"}]} for owner in owners],
        "inhibit_rules": [
            {"source_matchers": ['severity="page"'], "target_matchers": ['severity="ticket"'], "equal": ["touchpoint"]}
        ],
    }
