"""Redis beyond one server: one URL names a plain server, a Sentinel-watched master or a Cluster.

``REDIS_URL`` accepts three forms, and the same parsed form configures the app's client,
Flask-Caching and (for Sentinel) the Celery broker, so an operator changes one variable:

- ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``): one server;
- ``redis+sentinel://[:password@]host:26379[,host:26379...]/service_name[/db]``: the master
  that the Sentinels name ``service_name``; after a failover the client asks the Sentinels
  again and reconnects to the new master (redis-py's ``SentinelConnectionPool``);
- ``redis+cluster://[:password@]host:port[,host:port...]`` (or ``REDIS_CLUSTER=1`` with a plain
  ``redis://`` URL of any node): a Redis Cluster. Every key of one flash sale carries the hash
  tag ``{sale:<id>}``, so a sale's scripts run on one slot.

Nothing here re-implements redis-py: it only picks which of its clients to build.
"""

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class RedisTarget:
    """What a Redis URL names: ``kind`` is "server", "sentinel" or "cluster"."""

    kind: str
    url: str
    hosts: tuple = field(default_factory=tuple)
    service: str = ""
    db: int = 0
    password: str | None = None


def _hosts(netloc):
    hosts = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Redis URL: {item!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    return tuple(hosts)


def _password(netloc):
    userinfo = netloc.rpartition("@")[0]
    if not userinfo:
        return None
    return unquote(userinfo.partition(":")[2]) or None


def parse_redis_url(url, cluster=False):
    """The :class:`RedisTarget` that ``url`` names (``cluster``: REDIS_CLUSTER was set)."""
    scheme, _, rest = url.partition("://")
    if scheme == SENTINEL_SCHEME:
        netloc, _, path = rest.partition("/")
        parts = [part for part in path.split("/") if part]
        if not parts:
            raise ValueError(
                "Redis URL: a Sentinel URL names its service, "
                "e.g. redis+sentinel://host:26379/mymaster/0"
            )
        db = int(parts[1]) if len(parts) > 1 else 0
        return RedisTarget("sentinel", url, _hosts(netloc), parts[0], db, _password(netloc))
    if scheme == CLUSTER_SCHEME:
        netloc = rest.partition("/")[0]
        return RedisTarget("cluster", url, _hosts(netloc), password=_password(netloc))
    if cluster:
        parts = urlsplit(url)
        return RedisTarget(
            "cluster",
            url,
            ((parts.hostname or "127.0.0.1", parts.port or 6379),),
            password=parts.password,
        )
    return RedisTarget("server", url)


def redis_client(target, **options):
    """A redis-py client for ``target`` (``options``: timeouts and the like, for every kind)."""
    if target.kind == "sentinel":
        sentinel = Sentinel(
            list(target.hosts),
            sentinel_kwargs={
                key: options[key]
                for key in ("socket_timeout", "socket_connect_timeout")
                if key in options
            },
            **options,
        )
        return sentinel.master_for(target.service, db=target.db, password=target.password)
    if target.kind == "cluster":
        options.pop("health_check_interval", None)
        nodes = [ClusterNode(host, port) for host, port in target.hosts]
        return RedisCluster(startup_nodes=nodes, password=target.password, **options)
    return redis.Redis.from_url(target.url, **options)


def cache_settings(target):
    """Flask-Caching settings for ``target``: its Redis, Sentinel or Cluster cache type."""
    if target.kind == "sentinel":
        return {
            "CACHE_TYPE": "RedisSentinelCache",
            "CACHE_REDIS_SENTINELS": list(target.hosts),
            "CACHE_REDIS_SENTINEL_MASTER": target.service,
            "CACHE_REDIS_DB": target.db,
            "CACHE_REDIS_PASSWORD": target.password,
        }
    if target.kind == "cluster":
        return {
            "CACHE_TYPE": "RedisClusterCache",
            "CACHE_REDIS_CLUSTER": ",".join(f"{host}:{port}" for host, port in target.hosts),
            "CACHE_REDIS_PASSWORD": target.password or "",
        }
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": target.url}


def broker_settings(url):
    """(broker_url, transport options) for Celery: a Sentinel URL becomes kombu's form.

    kombu's Sentinel transport wants ``sentinel://host:port;sentinel://host:port`` with the
    service in ``broker_transport_options["master_name"]``; the rest of Luffy's URL forms pass
    through unchanged. Redis Cluster is no Celery broker (kombu has no Cluster transport).
    """
    target = parse_redis_url(url) if url.startswith(SENTINEL_SCHEME + "://") else None
    if target is None:
        return url, {}
    auth = f":{target.password}@" if target.password else ""
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.hosts)
    return broker, {"master_name": target.service}
