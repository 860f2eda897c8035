"""The baseline: a bare Flask route returning the banner JSON, touching neither Redis nor a
database."""

import json
import os

from flask import Flask, jsonify

app = Flask(__name__)
PAYLOAD = json.loads(os.environ.get("BENCH_PAYLOAD", '{"code": 100, "msg": "成功", "results": []}'))


@app.get("/api/v1/home/banners/")
def banners():
    return jsonify(PAYLOAD)
