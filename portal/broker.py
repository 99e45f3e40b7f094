"""kombu's file-system transport, with messages written atomically.

kombu writes a message file in place while a consumer may already be moving it away, so a
consumer can read a half-written (even empty) file and the worker dies on the JSON error. Here a
message is written beside the queue folder first and renamed into it when complete: a rename in
one file system is atomic, so consumers only ever see whole messages.
"""

import os
import tempfile
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        staging = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_out)), "staging")
        os.makedirs(staging, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=staging, suffix=".msg")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
            os.replace(temporary, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise filesystem.ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
