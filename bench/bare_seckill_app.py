"""The flash-sale baseline: a bare Flask POST route answering the buy JSON, touching neither
Redis nor a database."""

from flask import Flask, jsonify

app = Flask(__name__)
PAYLOAD = {"code": 100, "msg": "您正在排队", "task_id": "0123456789abcdef0123456789abcdef"}


@app.post("/api/v1/user/seckill/seckill/")
def buy():
    return jsonify(PAYLOAD)
