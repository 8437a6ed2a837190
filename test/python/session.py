"""Python paho-mqtt (Debian python3-paho-mqtt 1.6) as a device with a persistent session.

Driven by e2e/sessions_test.go: env HOST, PORT, USER, DEVICE, PASSWORD, QOS
(of the inbox subscription), CLEAN (1: a clean session, else persistent).
It connects as USER/DEVICE with MQTT 3.1.1 clean_session as CLEAN says,
subscribes to its inbox only when the broker has no session for it (as a
device that trusts its persistent session does), and prints one JSON line
per thing seen:
  {"step":"connack","present":bool}   the CONNACK and its session present flag
  {"step":"ready"}                    subscribed (or the session restored it)
  {"step":"msg","qos":N,"dup":bool,"payload":{...}}  each inbox PUBLISH
  {"step":"closed","rc":N}            the connection ended (a takeover, say)
On SIGTERM it disconnects cleanly (DISCONNECT after every PUBACK it owes)
and exits.
"""
import json
import os
import signal
import sys

import paho.mqtt.client as mqtt

env = os.environ
user, device = env["USER"], env["DEVICE"]
inbox = f"im/u/{user}/inbox"
qos = int(env.get("QOS", "1"))
clean = env.get("CLEAN") == "1"
state = {"stop": False, "closed": False}


def out(v):
    print(json.dumps(v), flush=True)


def on_connect(c, _u, flags, rc):
    if rc != 0:
        sys.exit(f"connect refused: {rc}")
    present = bool(flags.get("session present"))
    out({"step": "connack", "present": present})
    if present:
        out({"step": "ready"})
    else:
        c.subscribe(inbox, qos)


def on_subscribe(_c, _u, _mid, granted):
    if granted[0] > 2:
        sys.exit(f"subscription refused: {granted}")
    out({"step": "ready"})


def on_message(_c, _u, m):
    # paho sends the PUBACK when this returns, on this thread: the main loop
    # below disconnects only between two packets, so never before it.
    out({"step": "msg", "qos": m.qos, "dup": bool(m.dup), "payload": json.loads(m.payload)})


def on_disconnect(_c, _u, rc):
    state["closed"] = True
    out({"step": "closed", "rc": rc})


signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
c = mqtt.Client(client_id=f"{user}/{device}", clean_session=clean, protocol=mqtt.MQTTv311)
c.username_pw_set(user, env["PASSWORD"])
c.on_connect, c.on_subscribe, c.on_message, c.on_disconnect = on_connect, on_subscribe, on_message, on_disconnect
c.connect(env["HOST"], int(env["PORT"]), keepalive=30)
# The network loop runs here, on the main thread, so that SIGTERM's
# disconnect is queued after whatever the packet being handled owed.
while not state["stop"] and not state["closed"]:
    c.loop(timeout=0.05)
if not state["closed"]:
    c.disconnect()
    while not state["closed"]:
        c.loop(timeout=0.05)
