"""An Alertmanager configuration from the catalog: a receiver per owning team, pages over tickets."""

from __future__ import annotations

from ..catalog.model import Catalog
from .windows import PROFILES, Profile

EXAMPLE_WEBHOOK = "http://alerts.example.invalid"


def alertmanager_config(
    catalog: Catalog, webhook: str = EXAMPLE_WEBHOOK, profile: Profile = PROFILES["production"]
) -> dict:
    """Route by ``owner`` to one receiver per team (webhooks under ``webhook``; replace them with your
    pager, chat or e-mail receivers); tpmon's own alerts and anything else go to the Customer Room. A
    touchpoint's alerts of one severity are grouped as one incident, and a page inhibits the tickets
    of the same touchpoint."""
    owners = sorted({t.owner for t in catalog.touchpoints})
    base = webhook.rstrip("/")
    return {
        "route": {
            "receiver": "customer-room",
            # A touchpoint's alerts of one severity are one incident: its burn rate and its broken state
            # page as one notification group (the pager's incident), not one per alert name.
            "group_by": ["touchpoint", "severity"],
            "group_wait": profile.window("30s") if profile.scale == 1 else "1s",
            "group_interval": profile.window("5m"),
            "repeat_interval": profile.window("4h"),
            "routes": [
                # tpmon's own alerts (no owner): one group per alert and what it names.
                {
                    "matchers": ['tier="pipeline"'],
                    "receiver": "customer-room",
                    "group_by": ["alertname", "source", "stage", "topic", "instance"],
                },
                *({"matchers": [f'owner="{owner}"'], "receiver": f"team-{owner}"} for owner in owners),
            ],
        },
        "receivers": [{"name": "customer-room", "webhook_configs": [{"url": f"{base}/customer-room"}]}]
        + [{"name": f"team-{owner}", "webhook_configs": [{"url": f"{base}/{owner}"}]} for owner in owners],
        "inhibit_rules": [
            # (a page of tpmon itself has no touchpoint, and "equal" holds for a label both lack)
            {
                "source_matchers": ['severity="page"', 'touchpoint=~".+"'],
                "target_matchers": ['severity="ticket"'],
                "equal": ["touchpoint"],
            }
        ],
    }
