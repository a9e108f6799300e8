"""Instagram messaging: the Messenger Platform's event format under ``object: instagram``.

Differences from Messenger kept here: the account id and its token, text limited to 1000 UTF-8
bytes, no ``messaging_type``, and story mentions (an attachment) ignored rather than answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from channels.base import Capabilities, OutboundMessage
from channels.messenger import MAX_QUICK_REPLIES, QUICK_REPLY_TITLE, MessengerChannel, MessengerConfig
from channels.meta import MetaAppConfig
from channels.text import utf8_len


class InstagramConfig(MetaAppConfig):
    account_id: str = ""
    access_token: SecretStr = SecretStr("")

    required: ClassVar[tuple[str, ...]] = ("account_id", "access_token", "app_secret", "verify_token")


class InstagramChannel(MessengerChannel):
    name = "instagram"
    object_kind = "instagram"
    tags: ClassVar[Mapping[str, str]] = {"human": "HUMAN_AGENT"}  # the event/purchase tags are Messenger's only
    capabilities = Capabilities(
        max_text=1000, max_buttons=MAX_QUICK_REPLIES, button_label_max=QUICK_REPLY_TITLE, max_list_rows=0, links=False
    )

    def __init__(  # the Messenger machinery with the account's credentials
        self,
        config: InstagramConfig,
        *,
        agent: str,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        page_like = MessengerConfig(
            page_id=config.account_id,
            page_access_token=config.access_token,
            app_secret=config.app_secret,
            verify_token=config.verify_token,
            api_base_url=config.api_base_url,
            enabled=config.enabled,
        )
        super().__init__(page_like, agent=agent, http=http, clock=clock)
        self.instagram_config = config

    def _measure(self, text: str) -> int:
        """Instagram's limit is 1000 bytes of UTF-8, not characters."""
        return utf8_len(text)

    def _message_fields(self, recipient: str) -> dict[str, Any]:
        return {"recipient": {"id": recipient}}

    def window_fields(self, message: OutboundMessage, last_inbound_at: datetime | None) -> dict[str, str]:
        """Instagram takes no ``messaging_type`` inside the window, and after it only HUMAN_AGENT."""
        fields = super().window_fields(message, last_inbound_at)
        return fields if fields["messaging_type"] == "MESSAGE_TAG" else {}
