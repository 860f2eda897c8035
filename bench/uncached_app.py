"""Luffy's app plus one route that reads the banners from the database on every request."""

from flask import Response, json

from luffy import create_app
from luffy.home.banners import load_banners_from_database

app = create_app()


@app.get("/bench/banners-uncached/")
def uncached_banners():
    body = {"code": 100, "msg": "成功", "results": load_banners_from_database()}
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")
