"""The threaded development/test WSGI server, with Nagle's algorithm off.

Django's server writes a response's headers and body in separate small packets; with Nagle on,
the body waits for the client's delayed ACK (~40 ms on Linux) whenever the client keeps the
connection alive — as the gateway's pooled Session does. Every call to the embedded API on the
same machine then costs 40+ ms for nothing.
"""

import socket

from django.core.servers.basehttp import ThreadedWSGIServer


class NoDelayThreadedWSGIServer(ThreadedWSGIServer):
    def get_request(self):
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address
