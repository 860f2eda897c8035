"""The client's real address behind a reverse proxy: Werkzeug's ProxyFix, for trusted peers only.

nginx (deploy/nginx.conf) appends the address it saw to ``X-Forwarded-For``. Werkzeug's
``ProxyFix`` with ``x_for=PROXY_FIX_HOPS`` takes the address that many hops from the right,
so ``request.remote_addr`` becomes the client, and every rate limit keyed on it (SMS, buy,
login) counts each client apart. A client that talks to gunicorn directly could send its own
header; so, as gunicorn does for ``X-Forwarded-Proto``, the headers are believed only on a
connection from ``FORWARDED_ALLOW_IPS`` (addresses or networks, ``*`` for any peer).
"""

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


def parse_networks(entries):
    """``["127.0.0.1", "10.0.0.0/8"]`` as networks; None when an entry is ``*`` (any peer)."""
    if any(entry.strip() == "*" for entry in entries):
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as error:
            raise RuntimeError(f"FORWARDED_ALLOW_IPS: {entry!r} is not an address") from error
    return tuple(networks)


class TrustedProxyFix(ProxyFix):
    """``ProxyFix`` applied only to requests whose peer is one of ``trusted`` (networks)."""

    def __init__(self, app, trusted, hops):
        super().__init__(app, x_for=hops, x_proto=hops)
        self.trusted = trusted

    def is_trusted(self, peer):
        if self.trusted is None:
            return True
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False  # a unix socket or no address: nothing to compare
        return any(address in network for network in self.trusted)

    def __call__(self, environ, start_response):
        # Nothing to fix without the headers (a direct connection, a health probe).
        forwarded = "HTTP_X_FORWARDED_FOR" in environ or "HTTP_X_FORWARDED_PROTO" in environ
        if forwarded and self.is_trusted(environ.get("REMOTE_ADDR")):
            return super().__call__(environ, start_response)
        return self.app(environ, start_response)


def init_app(app):
    """Wrap the whole WSGI app (gates included), so every layer sees the client's address."""
    hops = app.config.get("PROXY_FIX_HOPS", 0)
    if hops > 0:
        trusted = parse_networks(app.config.get("FORWARDED_ALLOW_IPS") or [])
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, trusted, hops)
