"""Security headers on every response, the flash-sale gate's and static files' included.

A WSGI middleware rather than an ``after_request`` hook, so answers made before Flask (the
sold-out refusals of luffy/seckill/fast_path.py) carry them too. A header a view set itself is
kept.

* ``X-Content-Type-Options: nosniff``: a browser never runs an upload or a JSON answer as
  something other than its declared type;
* ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page can be framed
  (clickjacking);
* ``Referrer-Policy: same-origin``: full URLs never leak to other sites (Flask-WTF's HTTPS
  referrer check still gets them from our own pages);
* ``Content-Security-Policy``: the site's own pages load scripts only from ``/static/``, no
  inline script or event handler, no plugin, forms post only to the site. Flask-Admin's pages
  (``/admin/``) are built with inline scripts and styles by Flask-Admin itself, so they get a
  policy that allows those, still from this site only;
* ``Strict-Transport-Security`` in production (``HSTS_SECONDS``), where TLS ends at the proxy.
"""

SITE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Banner and course images may be https URLs (luffy/uploads.py validates them).
        "img-src 'self' data: https:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
ADMIN_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "connect-src 'self'",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
ADMIN_PREFIX = "/admin"


class SecurityHeaders:
    def __init__(self, wsgi_app, hsts_seconds=0):
        common = [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
        ]
        if hsts_seconds > 0:
            common.append(("Strict-Transport-Security", f"max-age={hsts_seconds}"))
        self.wsgi_app = wsgi_app
        self.site = [*common, ("Content-Security-Policy", SITE_POLICY)]
        self.admin = [*common, ("Content-Security-Policy", ADMIN_POLICY)]
        self.names = frozenset(name.lower() for name, _ in self.site)

    def headers_for(self, path):
        is_admin = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        return self.admin if is_admin else self.site

    def __call__(self, environ, start_response):
        extra = self.headers_for(environ.get("PATH_INFO") or "/")

        def start_with_headers(status, headers, exc_info=None):
            names = self.names
            if any(name.lower() in names for name, _ in headers):  # a view set one itself
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0].lower() not in present)
            else:
                headers.extend(extra)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_headers)


def init_app(app):
    app.wsgi_app = SecurityHeaders(app.wsgi_app, app.config.get("HSTS_SECONDS", 0))
